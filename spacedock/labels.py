"""The Docker labels Spacedock puts on what it makes, read back to find its own.

The builder labels images; the runner labels containers (which also inherit the image's).
Everything of one install carries LABEL_INSTANCE=settings.INSTANCE, so two installs share
an engine without touching each other's images and containers.
"""

LABEL_INSTANCE = "spacedock.instance"
LABEL_SPACE = "spacedock.space"  # Space.pk
# Images
LABEL_BUILD = "spacedock.build"  # Build.pk
LABEL_COMMIT = "spacedock.commit"  # the commit built
LABEL_SDK = "spacedock.sdk"  # a shared SDK image: "gradio-<version>"
# On a space's image: the pool image (the SDK image as this instance's runtime engine has it, by
# digest) it is made of plus its own files alone, so a warm pool container may run it; "" when it
# is not (its own requirements, packages, another sdk). Every container of the image inherits it.
LABEL_POOL = "spacedock.pool"
# On a warm pool container alone (docker_runtime.run_pool sets it): the pool image it holds. The
# builder sets it "" on every image, so that no container made from one (a space's, one started by
# hand, a tenant's Dockerfile that names it) is ever taken for a pool container.
LABEL_WARM = "spacedock.warm"
# Containers
LABEL_TARGET = "spacedock.target"  # "<image>@<generation>": what the container was started to run
LABEL_GENERATION = "spacedock.generation"  # Space.generation when it started
# A pin's or a preview's container (Deployment.pk): absent on the space's own, which the runner never
# mixes up with them (the space label alone is inherited from the image by both).
LABEL_DEPLOYMENT = "spacedock.deployment"
