"""``python -m chatnet.client``: the same as ``chatnet-client``."""

from chatnet.client.terminal import main

main()
