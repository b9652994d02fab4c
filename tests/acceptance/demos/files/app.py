import hashlib
import os
import tempfile

import gradio as gr


def reverse_file(path: str):
    data = open(path, "rb").read()
    folder = tempfile.mkdtemp()
    out = os.path.join(folder, "reversed-" + os.path.basename(path))
    with open(out, "wb") as f:
        f.write(data[::-1])
    return hashlib.sha256(data).hexdigest(), out


gr.Interface(
    reverse_file,
    gr.File(type="filepath", label="any file"),
    [gr.Textbox(label="sha256 of the upload"), gr.File(label="the bytes reversed")],
    api_name="reverse_file",
).launch()
