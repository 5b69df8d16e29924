"""The benchmark's code imports and reads its arguments (the benchmark itself is never run here)."""

from bench.__main__ import parse_args, percentile


def test_bench_arguments_and_percentiles():
    args = parse_args(["--clients", "100,1000", "--scenarios", "1,4", "--variants", "stock,fast"])
    assert args.clients == [100, 1000] and args.scenarios == {1, 4}
    assert args.variants == ["stock", "fast"]
    assert parse_args([]).idle_clients == [1000, 10000]
    assert percentile({0: 50, 9: 50}, 0.5, 0.1) == 0.1
    assert percentile({0: 50, 9: 50}, 0.99, 0.1) == 1.0
    assert percentile({}, 0.5, 0.1) is None
