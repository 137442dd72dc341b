from filejob.cli import main

main()
