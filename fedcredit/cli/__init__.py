"""The command line: the only place that parses argv and prints; one module per verb group, each thin (parse, call, print)."""
