import subprocess

import gradio as gr


def calculate(expression: str) -> str:
    # bc comes from packages.txt: apt installs it into the image.
    result = subprocess.run(["bc", "-q"], input=expression + "\n", capture_output=True, text=True, timeout=10)
    return (result.stdout or result.stderr).replace("\\\n", "").strip()


gr.Interface(
    calculate, gr.Textbox(label="bc expression"), gr.Textbox(label="result"), api_name="calculate"
).launch()
