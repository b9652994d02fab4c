import hashlib
import hmac
import os

import gradio as gr

# Set in the space's settings as a secret: it reaches the app as an environment variable.
KEY = os.environ.get("SIGNING_KEY", "")


def sign(text: str) -> str:
    if not KEY:
        return "SIGNING_KEY is not set: add it as a secret in the space's settings."
    return hmac.new(KEY.encode(), text.encode(), hashlib.sha256).hexdigest()


gr.Interface(sign, gr.Textbox(label="text"), gr.Textbox(label="HMAC-SHA256"), api_name="sign").launch()
