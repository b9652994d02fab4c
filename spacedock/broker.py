"""The filesystem broker of the embedded default (no REDIS_URL), with whole messages only.

kombu's filesystem transport creates a message's file and then writes it. A worker that lists the
queue folder in between takes the empty file, cannot decode it and stops ("Unrecoverable error:
JSONDecodeError"), and the message (a build, say) is lost; under honcho (`make up`) every other
process stops with it. Here a message is written under a name no worker reads and then renamed
into place: a rename within one folder is atomic, so a worker sees a whole message or none.
"""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # kombu's own name (milliseconds first: workers take messages in name order).
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # A leading dot: `_get` reads only names whose part after the first dot is "<queue>.msg".
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
