"""tus 1.0.0 at /v1/uploads (route.py), its headers (headers.py); the use cases are
`filejob.resumable`'s."""
