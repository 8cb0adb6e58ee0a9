import torch

from vggnet.bench import Figure, PeakMemory, make_jpegs, table


def test_peak_memory_counts_what_the_block_allocates(capfd):
    with PeakMemory(torch.device("cpu")) as mem:
        a = torch.ones(10 * 2**20 // 4)  # 10 MiB
        b = torch.ones(20 * 2**20 // 4)  # 20 MiB, both alive: 30
        del a, b
        c = torch.ones(5 * 2**20 // 4)
    assert 29.5 < mem.peak < 31 and c.numel() > 0
    assert capfd.readouterr().err == ""  # the profiler's own lines (USDT, gpuGetDeviceCount) are silenced


def test_table_gives_ratios_against_the_first_row_and_the_matmul_share():
    rows = [Figure("torchvision", 4.0, 100.0, 124.0), Figure("vggnet", 6.0, 80.0, 186.0)]
    text = table([("inference", rows)], ceiling=248.0)
    lines = text.splitlines()
    assert lines[2] == "| torchvision | 4.00 | 1.00x | 100 | 124 | 50% |"
    assert lines[3] == "| vggnet | 6.00 | 1.50x | 80 | 186 | 75% |"


def test_benchmark_jpegs_are_imagenet_sized(tmp_path):
    from vggnet.data.datasets import decode_image

    paths = make_jpegs(tmp_path, 2)
    sizes = {tuple(decode_image(p).shape) for p in paths}
    assert sizes == {(3, 375, 500), (3, 500, 375)}


def test_bf16_runs_are_skipped_where_the_cpu_would_emulate_them(monkeypatch, capsys):
    import vggnet.training.loop
    from vggnet.bench import BenchSettings, run_bench

    monkeypatch.setattr(vggnet.training.loop, "cpu_has_bf16", lambda: False)
    args = BenchSettings(amp=True, only=[])
    text = run_bench(args)
    out = capsys.readouterr().out
    assert "bf16 runs skipped: this CPU has no bf16 units" in out
    assert "bf16 -" in text and "bfloat16" not in text  # and no bf16 matmul rate was measured
