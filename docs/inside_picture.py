"""docs/inside.png and docs/inside_phone.png: the /inside page in Debian's headless Chromium, at 1280 x 800 and at
a phone's width, showing a Fashion-MNIST test image through the main job's model with one map's detail open.

    python docs/inside_picture.py runs/fashion_mnist_*/model.safetensors
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    import httpx
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from vggnet.data.fashion_mnist import load_fashion_mnist

    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    folder = Path(tempfile.mkdtemp())
    buffer = io.BytesIO()
    Image.fromarray(load_fashion_mnist(split="test").originals[0, 0].numpy()).save(buffer, "PNG")
    (folder / "boot.png").write_bytes(buffer.getvalue())
    log = open(folder / "log", "w")  # noqa: SIM115 (closed at the end)
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "vggnet", "inside", "--weights", sys.argv[1]]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(300):
            found = re.search(r"(http://\S+/inside)", (folder / "log").read_text())
            if found:
                try:
                    httpx.get(found.group(1), timeout=1)
                    break
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     f"--user-data-dir={folder / 'profile'}", "--window-size=1280,800"):  # fmt: skip
            options.add_argument(flag)
        browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
        try:
            browser.get(found.group(1))
            WebDriverWait(browser, 30).until(lambda b: "VGG" in b.find_element(By.ID, "models").text)
            browser.find_element(By.ID, "file").send_keys(str(folder / "boot.png"))
            WebDriverWait(browser, 60).until(
                lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "shown"
            )
            browser.find_elements(By.CSS_SELECTOR, ".block[data-block='2'] .map")[0].click()
            WebDriverWait(browser, 30).until(lambda b: b.find_element(By.CSS_SELECTOR, ".detail").is_displayed())
            browser.execute_script("window.scrollTo(0, 260)")
            browser.save_screenshot(str(ROOT / "docs" / "inside.png"))
            browser.set_window_size(390, 844)
            time.sleep(0.5)
            browser.save_screenshot(str(ROOT / "docs" / "inside_phone.png"))
        finally:
            browser.quit()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    print(f"wrote {ROOT / 'docs' / 'inside.png'} and {ROOT / 'docs' / 'inside_phone.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
