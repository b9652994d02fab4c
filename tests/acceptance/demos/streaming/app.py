import time

import gradio as gr


def count(n: float):
    text = ""
    for i in range(1, int(n) + 1):
        text += f"{i} "
        time.sleep(0.2)
        yield text.strip()


gr.Interface(
    count, gr.Number(value=5, label="count to"), gr.Textbox(label="so far"), api_name="count"
).launch()
