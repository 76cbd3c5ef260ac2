"""``make bench``: side-by-side benchmarks, each variant in a fresh process, interleaved, ending with a BENCH line."""
