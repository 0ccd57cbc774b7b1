from context_server.cli import main

main()
