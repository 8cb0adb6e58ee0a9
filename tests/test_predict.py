from helpers import make_folder, saved_tiny

from vggnet.cli import main
from vggnet.inference import load_model
from vggnet.predict import predict


def test_predict_prints_top_classes_and_draws_a_heatmap(tmp_path, capsys):
    model, path = saved_tiny(tmp_path, ("cat", "dog", "owl"))
    make_folder(tmp_path / "imgs", bad=False)
    image = str(tmp_path / "imgs" / "cat" / "0.png")
    result = predict(load_model(path), [image], top=2)[0]
    names = [n for n, _ in result["top"]]
    probs = [p for _, p in result["top"]]
    assert len(names) == 2 and set(names) <= {"cat", "dog", "owl"} and probs[0] >= probs[1] and sum(probs) <= 1
    heat = tmp_path / "heat.png"
    assert main(["predict", "--weights", str(path), image, "--top", "3", "--heatmap", str(heat)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == image and out.count("%") == 3 and "owl" in out
    assert heat.read_bytes()[:4] == b"\x89PNG"
