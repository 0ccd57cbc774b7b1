from context_server.cli import run

run()
