from talk_cli.cli import main

main()
