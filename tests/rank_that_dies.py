"""`talk` under torchrun with rank 1 killed (os._exit: no cleanup, no exception) as it starts
encoding its second chunk: the state a process killed mid-run leaves behind."""

import os

from talk_cli.cli import main
from talk_cli.encode import encoder

if os.environ["RANK"] == "1":
    encode_texts, calls = encoder.encode_texts, []

    def encode_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os._exit(9)
        return encode_texts(*args, **kwargs)

    encoder.encode_texts = encode_then_die

main()
