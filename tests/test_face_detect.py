"""face.detect: every landmark backend. dlib on a real photograph (scikit-image's astronaut); fan end to end on
locally generated weights (no download); synthgrid on a tiny network; and the errors for unusable photos."""
import sys
import urllib.error

import numpy as np
import pytest
import skimage.data
from PIL import Image

from talkinghead.data.synthgrid import FaceRenderer, FaceState
from talkinghead.data.synthgrid.face import Identity, landmarks_2d
from talkinghead.face import detect
from talkinghead.face.detect import (
    FaceDetection,
    FaceTooSmallError,
    NoFaceError,
    ProfileFaceError,
    detect_landmarks,
    detect_landmarks_batch,
)
from talkinghead.face.landmarks import estimate_yaw
from talkinghead.hub import WeightsError
from talkinghead.io import InputError


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()


def _resize(image, factor):
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((round(w * factor), round(h * factor)), Image.LANCZOS))


# --------------------------------------------------------------------------- dlib, on a real photograph


def test_dlib_finds_the_astronauts_face(astronaut):
    det = detect_landmarks(astronaut)  # auto = dlib
    assert isinstance(det, FaceDetection) and det.backend == "dlib"
    assert det.lmk.shape == (68, 2) and det.lmk.dtype == np.float32
    # dlib also finds a face-like patch at the lower left, as large as the face (a tie within 10 % of the area)
    # but scored far lower: the real face must be the one taken.
    assert det.n_faces == 2
    x0, y0, x1, y1 = det.box
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200
    lmk = det.lmk
    eyes_y, nose_y, mouth_y = lmk[36:48, 1].mean(), lmk[30, 1], lmk[48:68, 1].mean()
    assert eyes_y < nose_y < mouth_y < lmk[8, 1]  # eyes above nose above mouth above chin
    assert lmk[36:48:6, 0].mean() < lmk[42, 0]  # the subject's right eye on the image left
    assert 50 < np.linalg.norm(lmk[45] - lmk[36]) < 70  # outer eye corners: the face is about 90 px wide
    inner = lmk[17:]  # brows, nose, eyes, lips: inside the box (the jaw line may reach its edge)
    assert (inner[:, 0] > x0).all() and (inner[:, 0] < x1).all() and (inner[:, 1] > y0).all() and (inner[:, 1] < y1).all()
    assert abs(estimate_yaw(lmk)) < 15


def test_dlib_reads_paths_and_batches(astronaut, tmp_path):
    path = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    from_path = detect_landmarks(path, backend="dlib")
    assert np.allclose(from_path.lmk, detect_landmarks(astronaut).lmk)
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(blank)
    with pytest.raises(NoFaceError, match="wall.png"):
        detect_landmarks(blank)
    batch = detect_landmarks_batch([astronaut, _resize(astronaut, 0.5)], backend="dlib")
    assert len(batch) == 2
    assert np.abs(batch[1].lmk * 2 - batch[0].lmk).mean() < 3  # the same face at half the size


def test_several_faces_the_largest_is_taken(astronaut):
    head = astronaut[40:240, 120:320]  # the astronaut's head, about 90 px of face
    canvas = np.full((360, 640, 3), 128, np.uint8)
    canvas[150:280, 40:170] = _resize(head, 0.65)  # a smaller copy on the left
    canvas[20:220, 400:600] = head  # the large one on the right
    det = detect_landmarks(canvas)
    assert det.n_faces == 2
    assert det.box[0] > 400 and det.lmk[:, 0].min() > 400  # the large face


def test_tie_between_similar_faces_goes_to_the_higher_score():
    faces = [((0, 0, 100, 100), 0.2), ((200, 0, 295, 95), 1.5), ((400, 0, 440, 40), 3.0)]
    assert detect._pick(faces) == faces[1]  # 95² is within 10 % of 100²; the small face's score does not count
    assert detect._pick([((0, 0, 100, 100), 0.2), ((200, 0, 280, 80), 1.5)])[1] == 0.2  # 80² is not a tie


def test_no_face_and_tiny_face_errors(astronaut):
    with pytest.raises(NoFaceError, match="no face found in the photo: use a frontal photo where the face is at least 64 px wide"):
        detect_landmarks(np.zeros((240, 320, 3), np.uint8))
    tiny = _resize(astronaut, 0.25)  # the face is now about 23 px
    with pytest.raises(FaceTooSmallError, match=r"only \d+×\d+ px, smaller than the 40 px"):
        detect_landmarks(tiny)
    assert detect_landmarks(tiny, min_face=16).n_faces >= 1  # found all the same: the limit is ours
    assert issubclass(FaceTooSmallError, InputError) and issubclass(NoFaceError, InputError)


def test_profile_faces_are_refused(monkeypatch, astronaut):
    """dlib's frontal detector rarely finds a face turned past 45° at all (NoFaceError), and its predictor pulls
    landmarks towards a frontal shape; so the check is driven here by a backend that returns SynthGRID's exact
    landmarks of a turned head, which is what a better landmark model (fan) reports."""
    def backend(yaw):
        lmk = landmarks_2d(Identity(), FaceState(yaw=yaw), size=256)
        box = (*lmk.min(0), *lmk.max(0))
        return (lambda image, device: [(box, 1.0)]), (lambda image, box, device: lmk)

    monkeypatch.setitem(detect._PHOTO_BACKENDS, "dlib", backend(65))
    with pytest.raises(ProfileFaceError, match="turned about [67]\\d° away from the camera"):
        detect_landmarks(astronaut)
    assert detect_landmarks(astronaut, max_yaw=90).n_faces == 1
    monkeypatch.setitem(detect._PHOTO_BACKENDS, "dlib", backend(-15))
    assert detect_landmarks(astronaut).lmk.shape == (68, 2)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown landmark backend 'mtcnn'"):
        detect_landmarks(np.zeros((64, 64, 3), np.uint8), backend="mtcnn")


# --------------------------------------------------------------------------- fan, offline


@pytest.fixture(scope="module")
def face_alignment():
    numba = pytest.importorskip("numba")
    if "face_alignment" not in sys.modules:
        # Its two @jit helpers take ~16 s to compile on first use; as plain Python they are quick enough here.
        old, numba.config.DISABLE_JIT = numba.config.DISABLE_JIT, True
        try:
            return pytest.importorskip("face_alignment")
        finally:
            numba.config.DISABLE_JIT = old
    return sys.modules["face_alignment"]


@pytest.fixture
def torch_home(tmp_path, monkeypatch, face_alignment):
    """An empty torch hub cache in which nothing can be downloaded."""
    import torch

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError(f"no network in tests ({url})")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setattr(face_alignment.utils, "download_url_to_file", offline)
    yield tmp_path / "torch" / "hub" / "checkpoints"
    detect._load_fan.cache_clear()


def test_fan_without_weights_names_the_urls_and_the_cache(torch_home):
    with pytest.raises(WeightsError) as err:
        detect_landmarks(np.zeros((64, 64, 3), np.uint8), backend="fan")
    message = str(err.value)
    for name, (url, path) in detect.fan_weights().items():
        assert url in message and str(path) in message
        assert url.startswith("https://") and path.parent == torch_home
    assert "backend='dlib'" in message


def test_fan_runs_end_to_end_on_locally_made_weights(torch_home, face_alignment, astronaut):
    """Random weights in the package's own format where it looks for them (values are meaningless; the wiring is
    what is tested). The S3FD heads are set so that one anchor size fires everywhere."""
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    files = detect.fan_weights()
    torch_home.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), files["2DFAN-4"][1])
    detector = s3fd()
    with torch.no_grad():
        for name, layer in detector.named_children():
            if name.endswith(("_mbox_conf", "_mbox_loc")):
                layer.weight.zero_()
                layer.bias.zero_()  # boxes = the anchors themselves
        detector.conv7_2_mbox_conf.bias.copy_(torch.tensor([-5.0, 5.0]))  # "face" at the 512 px anchors
    torch.save(detector.state_dict(), files["s3fd"][1])
    torch.set_num_threads(1)

    image = _resize(astronaut, 0.5)
    det = detect_landmarks(image, backend="fan", device="cpu", max_yaw=180)
    assert det.backend == "fan" and det.lmk.shape == (68, 2) and det.lmk.dtype == np.float32
    assert np.isfinite(det.lmk).all() and det.n_faces >= 1 and det.score > 0.9
    assert det.box[2] - det.box[0] == pytest.approx(512)


# --------------------------------------------------------------------------- synthgrid


@pytest.fixture(scope="module")
def synthgrid_frames():
    renderer = FaceRenderer(Identity(), size=64)
    rendered = [renderer.render(FaceState(jaw=j)) for j in (0.0, 0.5, 1.0)]
    return np.stack([r.image for r in rendered])


def test_synthgrid_backend_with_a_given_network(synthgrid_frames):
    landmark_net = pytest.importorskip("talkinghead.nn.landmark_net")
    import torch

    torch.manual_seed(0)
    net = landmark_net.LandmarkNet(landmark_net.LandmarkNetConfig.preset("tiny")).eval()
    batch = detect_landmarks_batch(synthgrid_frames, backend="synthgrid", model=net)
    assert len(batch) == 3 and all(d.backend == "synthgrid" and d.box == (0.0, 0.0, 64.0, 64.0) for d in batch)
    single = detect_landmarks(synthgrid_frames[1], backend="synthgrid", model=net)
    assert single.lmk.shape == (68, 2) and single.lmk.dtype == np.float32
    assert np.allclose(single.lmk, batch[1].lmk, atol=1e-4)
    assert np.allclose(single.lmk, net.predict(synthgrid_frames[1:2])[0])


def test_synthgrid_backend_loads_shipped_weights(synthgrid_frames, tmp_path, monkeypatch):
    landmark_net = pytest.importorskip("talkinghead.nn.landmark_net")
    import torch

    from talkinghead import hub

    monkeypatch.setattr(hub, "WEIGHTS_DIR", tmp_path)
    monkeypatch.delenv(hub.HUB_REPO_ENV, raising=False)
    detect._landmark_net.cache_clear()
    with pytest.raises(WeightsError, match=landmark_net.WEIGHTS_NAME):
        detect_landmarks(synthgrid_frames[0], backend="synthgrid")
    torch.manual_seed(0)
    net = landmark_net.LandmarkNet(landmark_net.LandmarkNetConfig.preset("tiny"))
    hub.save_weights(net.state_dict(), landmark_net.WEIGHTS_NAME, root=tmp_path, config="tiny", data="test")
    try:
        det = detect_landmarks(synthgrid_frames[0], backend="synthgrid")
    finally:
        detect._landmark_net.cache_clear()
    assert det.lmk.shape == (68, 2) and np.isfinite(det.lmk).all()
