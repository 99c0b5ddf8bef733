"""CLI command groups; cli.py assembles them into one typer app."""
