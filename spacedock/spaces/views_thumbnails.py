from django.http import FileResponse, Http404
from django.views.decorators.http import require_GET

from spacedock.spaces import thumbnails
from spacedock.spaces.models import Build


@require_GET
def thumbnail(request, build_id: int):
    """A public build's gallery picture; a private space's never leaves the platform."""
    build = Build.objects.select_related("space").filter(pk=build_id, thumbnail_taken__isnull=False).first()
    if build is None or build.space.is_private:
        raise Http404("no picture of that build")
    try:
        picture = open(thumbnails.path_for(build.pk), "rb")  # noqa: SIM115 (FileResponse closes it)
    except FileNotFoundError:
        raise Http404("no picture of that build") from None
    response = FileResponse(picture, content_type="image/png")
    response["Cache-Control"] = "public, max-age=86400"  # a build's picture never changes
    return response
