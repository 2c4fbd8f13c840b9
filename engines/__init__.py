"""The systems under test and the work they do.

`engines.workloads` defines each workload once; `engines.pipe`, `engines.thrift` and
`engines.triton` serve those workloads and expose them to the harness as systems.
"""
