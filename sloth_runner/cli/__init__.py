"""The command line: one module per command group, one place (`main`) that maps errors to exit codes."""
