"""Tests for the Gradio demo's SynthGRID tab (event function and served API) and ``python app.py`` itself.

The photo + speech tab is tested in tests/test_demo_*.py.
"""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home

import queue  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # app.py and demo/ live at the repository root, outside the installed package
    sys.path.insert(0, str(ROOT))

from demo import common, synthgrid, ui  # noqa: E402
from talkinghead.data.synthgrid.corpus import GRID_GRAMMAR  # noqa: E402
from talkinghead.io import read_video  # noqa: E402

SENTENCE = "place blue at f two now"


@pytest.fixture(scope="module", autouse=True)
def output_root(tmp_path_factory):
    """Keep the videos of this module's calls in pytest's temporary directory, not the demo's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(common, "OUTPUT_ROOT", tmp_path_factory.mktemp("outputs"))
        yield common.OUTPUT_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_build_demo_returns_blocks():
    assert isinstance(ui.build_demo(), gr.Blocks)


def test_generate_writes_a_video_with_audio_and_a_plot():
    path, fig = synthgrid.generate(SENTENCE, 3, "en-US", 0, 96)
    frames, fps, audio = read_video(path)
    assert Path(path).suffix == ".mp4"
    assert frames.shape[0] > 10 and frames.shape[1:] == (96, 96, 3)
    assert fps == 25
    assert audio is not None
    assert abs(len(audio) / 16000 - frames.shape[0] / 25) < 0.1  # the streams end together
    assert frames.std(axis=0).max() > 0, "the face never moves"
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    labels = [text.get_text() for text in fig.axes[0].texts]
    assert labels == SENTENCE.split()


@pytest.mark.parametrize(
    ("text", "voice", "message"),
    [
        ("", "en-US", "nothing to say"),
        ("   ", "en-US", "nothing to say"),
        ("a" * (synthgrid.MAX_CHARS + 1), "en-US", f"{synthgrid.MAX_CHARS} or fewer"),
        (SENTENCE, "xx-not-a-voice", "has no voice"),
    ],
)
def test_bad_input_raises_gr_error(text, voice, message):
    with pytest.raises(gr.Error, match=message):
        synthgrid.generate(text, 0, voice, 0, 96)


@pytest.mark.parametrize("speaker", [-1, 1000, 2.5, None])
def test_bad_speaker_raises_gr_error(speaker):
    with pytest.raises(gr.Error, match="speaker must be a whole number"):
        synthgrid.generate(SENTENCE, speaker, "en-US", 0, 96)


def test_old_output_directories_are_swept(output_root):
    old, recent = output_root / "old-call", output_root / "recent-call"
    for folder in (old, recent):
        folder.mkdir()
    long_ago = time.time() - common.OUTPUT_MAX_AGE - 60
    os.utime(old, (long_ago, long_ago))
    path, _ = synthgrid.generate("now", 0, "en-US", 0, 96)
    assert not old.exists()
    assert recent.exists()
    assert Path(path).parent.parent == output_root


def test_random_text_follows_grid_grammar():
    words = synthgrid.random_text().split()
    assert len(words) == len(GRID_GRAMMAR)
    assert all(word in slot for word, slot in zip(words, GRID_GRAMMAR))


@pytest.fixture(scope="module")
def client():
    from gradio_client import Client

    demo = ui.build_demo()
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()


def test_served_generate_returns_a_video(client):
    video, plot = client.predict(SENTENCE, 1, "en", 0, 96, api_name="/synthgrid")
    assert isinstance(video, str) and Path(video).is_file()  # gradio 6 clients get a Video as a plain filepath
    assert read_video(video)[0].shape[0] > 10
    assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image/")


def test_served_bad_input_errors_and_server_keeps_serving(client):
    with pytest.raises(Exception, match="or fewer"):
        client.predict("a" * (synthgrid.MAX_CHARS + 1), 0, "en-US", 0, 96, api_name="/synthgrid")
    with pytest.raises(Exception, match="has no voice"):
        client.predict(SENTENCE, 0, "xx-not-a-voice", 0, 96, api_name="/synthgrid")
    video, _ = client.predict("bin red", 0, "en-US", 0, 96, api_name="/synthgrid")
    assert Path(video).is_file()


def test_python_app_py_prints_its_local_url():
    port = free_port()
    pythonpath = os.pathsep.join(p for p in (str(ROOT / "lib"), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=pythonpath, GRADIO_SERVER_PORT=str(port), PYTHONUNBUFFERED="1",
               GRADIO_ANALYTICS_ENABLED="False")
    env.pop("GRADIO_SERVER_NAME", None)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            if f"http://127.0.0.1:{port}" in line:
                break
        assert any(f"http://127.0.0.1:{port}" in line for line in seen), "no local URL in 20 s:\n" + "".join(seen)
    finally:
        proc.kill()
        proc.wait(timeout=10)
