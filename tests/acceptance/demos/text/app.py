import gradio as gr


def shout(text: str) -> str:
    words = text.split()
    return f"{text.upper()} ({len(words)} words)"


gr.Interface(shout, gr.Textbox(label="text"), gr.Textbox(label="shouted"), api_name="shout").launch()
