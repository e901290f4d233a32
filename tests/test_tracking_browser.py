"""TensorBoard shows a tracked run's curves: a small real `w2sg train` run with `tracking:
{tensorboard: true}`, `tensorboard --logdir` on 127.0.0.1, its scalars page in headless Chromium
(the browser set-up of test_web_browser.py: skipped without a browser unless
W2SG_REQUIRE_BROWSER=1). docs/img/tensorboard.png (docs/tracking.md) is taken here:
`W2SG_SCREENSHOTS=docs/img pytest tests/test_tracking_browser.py` rewrites it."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from test_web_browser import IMG, driver, free_port, serving

from agents.names import resolve_model_path
from w2sg.experiment import Sizes, W2SGConfig, run_experiment
from w2sg.models import ModelConfig
from w2sg.tracking import TrackingConfig
from w2sg.train import TrainConfig

pytestmark = pytest.mark.slow
__all__ = ["driver"]  # the browser fixture, used by name


def tensorboard(logdir: Path, port: int) -> AbstractContextManager[str]:
    """`tensorboard --logdir LOGDIR` on 127.0.0.1:port, until the block ends."""
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1"]
    return serving([*cmd, "--port", str(port)], f"http://127.0.0.1:{port}", "/data/environment", tries=1200)


def test_tensorboard_scalars_page_shows_every_models_curves(driver: Any, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    step = TrainConfig(lr=1e-2, epochs=5, batch_size=16, eval_every=4, warmup_frac=0.1, device="cpu")
    cfg = W2SGConfig(
        name="tb-demo",
        sizes=Sizes(weak=60, strong=80, val=30, test=40),
        weak=ModelConfig(kind="features", path="embedded/tiny-gpt2", max_length=48),
        weak_train=step,
        strong=ModelConfig(kind="features", path="embedded/minilm", max_length=128),
        strong_train=step,
        n_boot=100,
        out_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        tracking=TrackingConfig(tensorboard=True),
    )
    result = run_experiment(cfg, resolve=resolve_model_path)
    with tensorboard(tmp_path / "runs" / result.run_id / "tensorboard", free_port()) as url:
        driver.set_window_size(1400, 1000)
        driver.get(f"{url}/#scalars&_smoothingWeight=0")  # the curves as logged
        # A chart is drawn when its line (an svg path of the plot) is there, for each card title.
        charts = "return document.querySelectorAll('svg path').length"
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(charts) > 100)
        # What the page draws (its cards are in shadow DOM, out of innerText's reach): the scalars
        # TensorBoard serves it, one loss, lr and val accuracy per model.
        tags = json.loads(urllib.request.urlopen(f"{url}/data/plugin/scalars/tags", timeout=10).read())
        (run,) = tags.values()
        for m in ("weak_teacher_xent", "ceiling_xent", "student_on_weak_xent"):
            assert {f"{m}/loss", f"{m}/lr", f"{m}/val_accuracy"} <= set(run)
        time.sleep(2)  # the charts' last animation frame
        driver.save_screenshot(str(IMG / "tensorboard.png"))
