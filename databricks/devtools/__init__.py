"""The simulated day (make demo) and the benchmarks (make bench): not part of the product."""
