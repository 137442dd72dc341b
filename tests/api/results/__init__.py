"""Jobs with several results (`ctx.emit`): listed, each downloaded as `/result` is, all of them
in a zip made while it is sent, delete-after-download once every one was downloaded, and every
output covered by retention, quotas, fencing and the orphan sweep; both profiles."""
