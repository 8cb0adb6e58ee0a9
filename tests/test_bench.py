import pytest
import torch

from vggnet.bench.measure import Figure, PeakMemory, table
from vggnet.bench.sections import make_jpegs


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
    from vggnet.data.images import decode_image

    paths = make_jpegs(tmp_path, 2)
    sizes = {tuple(decode_image(p).shape) for p in paths}
    assert sizes == {(3, 375, 500), (3, 500, 375)}


def test_bf16_runs_are_skipped_where_the_cpu_would_emulate_them(monkeypatch, capsys):
    import vggnet.base.hardware
    from vggnet.bench.run import BenchSettings, run_bench

    monkeypatch.setattr(vggnet.base.hardware, "cpu_has_bf16", lambda: False)
    args = BenchSettings(amp=True, only=[])
    text = run_bench(args)
    out = capsys.readouterr().out
    assert "bf16 runs skipped: this CPU has no bf16 units" in out
    assert "bf16 -" in text and "bfloat16" not in text  # and no bf16 matmul rate was measured


def test_the_engines_side_by_side_mark_autos_pick_and_rank_against_the_fastest(tmp_path):
    pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'vggnet[openvino]')")
    from vggnet.bench.engines import engines_table, run_engines
    from vggnet.engines.select import installed

    figures = run_engines([2], 1, tmp_path, only_model="main job")
    names = [f.name for f in figures]
    for engine in installed():
        assert any(f"{engine} f32" in n for n in names) and any(f"{engine} int8" in n for n in names)
    assert any("PyTorch eager f32" in n for n in names)
    assert sum("(auto's pick)" in n for n in names) == 2  # one float32 and one int8 engine
    table = engines_table(figures, 100.0)
    ratios = [float(row.split("|")[4].strip()[:-1]) for row in table.splitlines()[2:]]
    assert all(f.images_per_s > 0 for f in figures)
    assert max(ratios) == 1.0 and all(0 <= r <= 1.0 for r in ratios)  # two decimals: a far slower run reads 0.00
