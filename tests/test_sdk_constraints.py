"""The constraints a space's requirements install under, from its SDK image's lock (builder/sdk)."""

from builder.sdk.constraints import constraints

LOCK = """# The shared SDK image of Gradio 4.44.1: ...
gradio==4.44.1
    # via -r -
huggingface-hub==0.25.1
    # via
    #   gradio
    #   gradio-client
numpy==2.1.1
requests==2.32.3
"""


def test_a_bare_name_or_a_range_the_lock_meets_keeps_the_locked_version():
    lines, notes = constraints(LOCK, "diffusers\nHuggingface_Hub\nnumpy>=1.20  # any\n")
    assert lines == ["gradio==4.44.1", "huggingface-hub==0.25.1", "numpy==2.1.1", "requests==2.32.3"]
    assert notes == []


def test_an_authors_own_pin_replaces_the_locked_version():
    lines, notes = constraints(LOCK, "numpy==1.26.4\nrequests @ https://example.org/requests.whl\n")
    assert lines == ["gradio==4.44.1", "huggingface-hub==0.25.1"]
    assert notes == [
        "numpy==1.26.4 replaces numpy==2.1.1 from the Gradio image's lock",
        "requests @ https://example.org/requests.whl replaces requests==2.32.3 from the Gradio image's lock",
    ]


def test_gradio_stays_at_the_spaces_sdk_version():
    lines, notes = constraints(LOCK, "gradio==5.0.0\n")
    assert "gradio==4.44.1" in lines and notes == []


def test_options_includes_comments_and_other_platforms_change_nothing():
    requirements = (
        "--extra-index-url https://example.org/simple\n-r more.txt\n# numpy==1.0\n"
        "numpy==1.0 ; sys_platform == 'win32'\nnumpy \\\n  >=1.0\n./local/package\n"
    )
    lines, notes = constraints(LOCK, requirements)
    assert lines == ["gradio==4.44.1", "huggingface-hub==0.25.1", "numpy==2.1.1", "requests==2.32.3"]
    assert notes == []
