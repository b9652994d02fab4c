import tempfile
import wave

import gradio as gr


def reverse(path: str):
    # The standard library's wave module: no ffmpeg needed for WAV.
    with wave.open(path, "rb") as src:
        params = src.getparams()
        frames = src.readframes(params.nframes)
    width = params.sampwidth * params.nchannels
    samples = [frames[i : i + width] for i in range(0, len(frames), width)]
    out = tempfile.NamedTemporaryFile(suffix=".wav", delete=False).name
    with wave.open(out, "wb") as dst:
        dst.setparams(params)
        dst.writeframes(b"".join(reversed(samples)))
    summary = (
        f"rate={params.framerate} channels={params.nchannels} frames={params.nframes} "
        f"seconds={params.nframes / params.framerate:.3f}"
    )
    return summary, out


gr.Interface(
    reverse,
    gr.Audio(type="filepath", label="a WAV file"),
    [gr.Textbox(label="what was heard"), gr.Audio(type="filepath", format="wav", label="backwards")],
    api_name="reverse",
).launch()
