"""The photo + speech tab served: through ``gradio_client`` in-process, and ``python app.py`` under a load of
concurrent clients (all complete, none lost, the server's memory bounded), on tiny random weights."""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home

import queue  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, Path(__file__).resolve().parent):  # demo/ and the helpers of test_demo_talk
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from test_demo_talk import FACE, FILE, SR, save_tiny_sda, speech  # noqa: E402

from talkinghead.io import read_video  # noqa: E402

CLIENTS = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    soundfile.write(root / "speech.wav", speech(0.8), SR)
    Image.fromarray(np.full((200, 200, 3), 127, np.uint8)).save(root / "grey.png")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    save_tiny_sda(root)
    return root


@pytest.fixture(scope="module")
def client(files):
    from gradio_client import Client

    from demo import build_demo

    demo = build_demo({"sda": str(files / "sda_tiny.safetensors")})
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()


def generate(client, photo, audio, seed=3):
    from gradio_client import handle_file

    return client.predict(photo=handle_file(photo), audio=handle_file(audio), speech_from=FILE, model="sda", seed=seed,
                          api_name="/generate")


def test_served_generation(client, files):
    video, plot, face, summary, scores, trajectory, before, after, inversion = generate(client, FACE, str(files / "speech.wav"))
    frames, fps, sound = read_video(video)
    assert frames.shape == (20, 256, 256, 3) and fps == 25 and sound is not None
    assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image/")
    assert Path(face).is_file() and "LSE-C" in summary
    assert scores["n_faces"] == 1 and set(scores["sync"]) == {"offset", "lse_c", "lse_d"}
    assert trajectory is None and before is None and after is None


def test_served_bad_input_is_an_error_and_the_server_keeps_serving(client, files):
    with pytest.raises(Exception, match="no face found"):
        generate(client, str(files / "grey.png"), str(files / "speech.wav"))
    with pytest.raises(Exception, match="no audio stream"):
        generate(client, FACE, FACE)  # a photo given as the speech
    with pytest.raises(Exception, match="could not read image"):  # not gradio's bare "Error": see demo.ui.keep_unreadable_uploads
        generate(client, str(files / "corrupt.png"), str(files / "speech.wav"))
    assert Path(generate(client, FACE, str(files / "speech.wav"))[0]).is_file()


@pytest.mark.slow
def test_python_app_py_under_concurrent_load(files):
    """``CLIENTS`` clients at once against ``python app.py``: every request completes with its own video, and the
    server's resident memory after the burst stays within 300 MB of what it was after the first request."""
    import psutil
    from gradio_client import Client

    port = free_port()
    pythonpath = os.pathsep.join(p for p in (str(ROOT / "lib"), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=pythonpath, GRADIO_SERVER_PORT=str(port), PYTHONUNBUFFERED="1",
               TALKINGHEAD_DEMO_WEIGHTS=f"sda={files / 'sda_tiny.safetensors'}", OMP_NUM_THREADS="1")
    env.pop("GRADIO_SERVER_NAME", None)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        url, seen, deadline = f"http://127.0.0.1:{port}", [], time.monotonic() + 60
        while not any(url in line for line in seen) and time.monotonic() < deadline:
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                assert proc.poll() is None, "app.py exited:\n" + "".join(seen)
        assert any(url in line for line in seen), "no local URL:\n" + "".join(seen)

        server = psutil.Process(proc.pid)
        audio = str(files / "speech.wav")
        generate(Client(url, verbose=False), FACE, audio)  # loads torch, the pipeline and the measuring networks
        rss_before = server.memory_info().rss
        clients = [Client(url, verbose=False) for _ in range(CLIENTS)]
        t0 = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(lambda i: generate(clients[i], FACE, audio, seed=i), range(CLIENTS)))
        seconds = time.monotonic() - t0
        rss_after = server.memory_info().rss
        print(f"\nload test: {CLIENTS} clients in {seconds:.1f} s; server RSS {rss_before / 2**20:.0f} MB before, "
              f"{rss_after / 2**20:.0f} MB after")
        videos = {result[0] for result in results}  # gradio names its copy by content: seeds differ, so do videos
        assert len(videos) == CLIENTS, "a request was lost or answered with another's video"
        assert sorted(result[4]["frames"] for result in results) == [20] * CLIENTS
        assert all(read_video(video)[0].shape == (20, 256, 256, 3) for video in videos)
        assert rss_after - rss_before < 300 * 2**20
    finally:
        proc.kill()
        proc.wait(timeout=10)
