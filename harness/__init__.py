"""pipebench's harness: scenarios in, load out, numbers and reports back.

scenario.py (validated YAML) -> runner.py (systems x points) -> loadgen.py (clients) ->
stats.py (numbers) -> results.py (JSON) and table.py (the seed-style table).
"""
