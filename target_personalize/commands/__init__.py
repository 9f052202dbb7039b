"""The ``personalize`` subcommands, one module each."""
