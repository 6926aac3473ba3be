"""Building blocks of the benchmark suite (``benchmarks/run.py``): measured child processes, hc
servers, a delaying/counting proxy, test data, curl command lines and the report."""
