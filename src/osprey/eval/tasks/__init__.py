"""One file per benchmark; ``TASKS`` names them for the command line."""
