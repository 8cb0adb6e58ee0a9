"""Downloads never hang and always say what they fetch: a silent server, a served file, a corrupted one."""

import hashlib
import http.server
import socket
import threading
import time

import pytest
import torch

import vggnet
from vggnet.base.download import DownloadError, fetch


@pytest.fixture
def silent_server():
    """A server that accepts connections and never answers, as a dead proxy does."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def file_server(tmp_path):
    """A real HTTP server on loopback, serving ``tmp_path/served``."""
    (tmp_path / "served").mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path / "served"), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path / "served", f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_server_that_never_answers_times_out_with_a_way_out(silent_server, tmp_path, monkeypatch, hub_dir):
    monkeypatch.setenv("VGGNET_DOWNLOAD_TIMEOUT", "1")
    url = f"http://127.0.0.1:{silent_server}/vgg16-397923af.pth"
    started = time.monotonic()
    with pytest.raises(ValueError) as found:
        vggnet.load_weights(vggnet.build("vgg16"), url)
    assert time.monotonic() - started < 10
    message = str(found.value)
    assert f"could not download {url}: no answer within 1 s" in message
    assert f"put it at {hub_dir / 'checkpoints' / 'vgg16-397923af.pth'}" in message
    assert 'vggnet.load_weights(model, "path/to/vgg16-397923af.pth")' in message and "--weights" not in message
    assert not (hub_dir / "checkpoints").exists() or not list((hub_dir / "checkpoints").iterdir())


def test_a_loss_that_cannot_download_names_its_own_argument(silent_server, monkeypatch, hub_dir):
    """The losses are a Python API: a failed download tells the caller the argument that takes the file by hand,
    not a command-line flag."""
    from vggnet.losses import LPIPS, PerceptualLoss, StyleLoss

    monkeypatch.setenv("VGGNET_DOWNLOAD_TIMEOUT", "1")
    url = f"http://127.0.0.1:{silent_server}/vgg16-397923af.pth"
    for loss in (PerceptualLoss, StyleLoss):
        with pytest.raises(ValueError) as found:
            loss(weights=url)
        message = str(found.value)
        assert f'pass its path as {loss.__name__}(weights="path/to/vgg16-397923af.pth")' in message, message
        assert "--weights" not in message
    trunk = vggnet.build("vgg16", width=1 / 16, fc_width=8)
    with pytest.raises(ValueError) as found:
        LPIPS(trunk, lin=f"http://127.0.0.1:{silent_server}/vgg.pth")
    assert 'pass its path as LPIPS(lin="path/to/vgg.pth")' in str(found.value) and "--weights" not in str(found.value)


def test_a_download_says_what_where_and_how_big_and_lands_whole(file_server, tmp_path, capsys, hub_dir):
    served, base = file_server
    model = vggnet.build("vgg11", width=1 / 16, fc_width=8)
    torch.save(model.state_dict(), served / "plain.pth")
    data = (served / "plain.pth").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    (served / f"tiny-{digest[:8]}.pth").write_bytes(data)
    loaded = vggnet.load_weights(vggnet.build("vgg11", width=1 / 16, fc_width=8), f"{base}/tiny-{digest[:8]}.pth")
    torch.testing.assert_close(loaded.features[0].weight, model.features[0].weight)
    err = capsys.readouterr().err
    size = f"{len(data) / 2**10:.1f} kB"
    assert f"downloading tiny-{digest[:8]}.pth ({size}) from {base}/tiny-{digest[:8]}.pth into {hub_dir}" in err
    (served / "bad-0123456789.pth").write_bytes(data)  # its name promises another hash
    with pytest.raises(DownloadError, match="arrived corrupted: its sha256 does not start with 0123456789"):
        fetch(f"{base}/bad-0123456789.pth", tmp_path / "bad-0123456789.pth", "advice")
    assert not (tmp_path / "bad-0123456789.pth").exists()
    with pytest.raises(
        DownloadError, match=r"could not download .*missing.pth: the server answered HTTP 404 \(.*\). advice"
    ):
        fetch(f"{base}/missing.pth", tmp_path / "missing.pth", "advice")
