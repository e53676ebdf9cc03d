import json
import subprocess
import sys

import numpy as np

from talkinghead.cli import main


def test_synth_cli_writes_a_corpus_and_prints_throughput(tmp_path, capsys):
    out = tmp_path / "sg"
    assert main(["synth", "--out", str(out), "--speakers", "1", "--per-speaker", "2", "--size", "64", "--workers", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "frames/s rendered and encoded" in printed and "train: s1" in printed
    corpus = json.loads((out / "corpus.json").read_text())
    assert corpus["stats"]["frames"] == sum(len(np.load(p)) for p in out.glob("s1/landmarks/*.npy"))
    assert len(list(out.glob("s1/video/*.mp4"))) == 2


def test_bad_arguments_give_a_clear_error(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "x"), "--size", "8"]) == 2
    assert "use 64–256 pixels" in capsys.readouterr().err
    assert main(["say", "   ", "--out", str(tmp_path / "a.mp4")]) == 2
    assert "nothing to say" in capsys.readouterr().err
    assert not (tmp_path / "a.mp4").exists()


def test_say_runs_as_a_module(tmp_path):
    out = tmp_path / "hello.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "talkinghead", "say", "hello world", "--out", str(out), "--size", "64"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 1000 and str(out) in proc.stdout
