"""`python -m sdvicl_bench ...` (what torchrun launches) is the same as `sdvicl-bench ...`."""

from sdvicl_bench.cli import main

if __name__ == "__main__":
    main()
