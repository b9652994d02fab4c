import gradio as gr
from num2words import num2words


def spell(n: float, lang: str) -> str:
    return num2words(int(n), lang=lang)


gr.Interface(
    spell, [gr.Number(label="number"), gr.Dropdown(["en", "fr", "de"], value="en")], "text", api_name="spell"
).launch()
