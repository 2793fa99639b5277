"""The typer command line: parse arguments, call the pipeline or a query, print."""
