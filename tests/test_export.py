import onnxruntime as ort
import torch
from helpers import loaded, randomise_bn, tiny

from vggnet.export import export


def test_onnx_and_torchscript_parity_at_two_sizes(tmp_path):
    model = randomise_bn(tiny("vgg11_bn"))
    results = export(loaded(model), tmp_path)
    assert results["onnx"]["max_rel_error"] < 1e-4
    session = ort.InferenceSession(results["onnx"]["path"], providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(results["torchscript"]["path"])
    for batch, h, w in [(1, 224, 224), (3, 256, 320)]:
        x = torch.randn(batch, 3, h, w)
        with torch.no_grad():
            expected = model.score_map(x).mean((2, 3))
        got = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(scripted(x), expected, rtol=1e-4, atol=1e-5)
