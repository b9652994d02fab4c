import gradio as gr


def add(item: str, items: list[str]):
    items = [*items, item.strip()]
    return items, f"{len(items)} items: " + ", ".join(items)


def clear():
    return [], "0 items"


with gr.Blocks(title="Shopping list") as demo:
    items = gr.State([])
    item = gr.Textbox(label="item")
    summary = gr.Textbox(label="the list")
    gr.Button("Add").click(add, [item, items], [items, summary], api_name="add")
    gr.Button("Clear").click(clear, None, [items, summary], api_name="clear")

demo.launch()
