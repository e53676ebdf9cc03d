"""Hugging Face Spaces entry point: build the demo from ``demo/`` and launch it.

Run locally with ``python app.py``; it binds to 127.0.0.1 unless GRADIO_SERVER_NAME says otherwise (Spaces sets
0.0.0.0), on GRADIO_SERVER_PORT or gradio's first free port from 7860. Pipelines load their weights on first use from
``weights/``, then from the Hugging Face Hub repo named by TALKINGHEAD_HUB_REPO; TALKINGHEAD_DEMO_WEIGHTS
(``sda=path/to/file.safetensors``) points a pipeline at other weights, TALKINGHEAD_DEMO_MAX_SECONDS caps the speech
length (default 600 s) and TALKINGHEAD_DEVICE picks the torch device (default: CUDA when there is one).
"""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network calls home; must precede `import gradio`

from demo import build_demo  # noqa: E402

demo = build_demo()  # Spaces imports this name

if __name__ == "__main__":
    port = os.environ.get("GRADIO_SERVER_PORT")
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(port) if port else None,
        max_file_size="200mb",  # a 10-minute wav is 20 MB, a 50-megapixel photo less than 100 MB
    )
