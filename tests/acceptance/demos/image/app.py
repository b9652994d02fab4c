import gradio as gr
import numpy as np


def invert(image: np.ndarray) -> np.ndarray:
    return (255 - image.astype(np.uint8)).astype(np.uint8)


# PNG out: a lossless format, so every pixel can be checked.
gr.Interface(
    invert,
    gr.Image(type="numpy", image_mode="RGB"),
    gr.Image(type="numpy", format="png"),
    api_name="invert",
).launch()
