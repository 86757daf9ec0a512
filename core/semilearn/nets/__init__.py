"""Networks, and the one interface every network follows.

A network is a ``torch.nn.Module`` built by ``builder(num_classes, in_channels,
image_size)`` (see the ``register_nets`` hook point). Its ``forward(x)`` takes a float
batch ``[B, C, H, W]`` and returns a dict:

* ``logits``: ``[B, num_classes]`` class scores;
* ``feat``: ``[B, num_features]`` the features before the classifier.

It exposes ``num_features`` (the width of ``feat``). Algorithms that need more heads
(projection, rotation) add them around the network, reading ``feat``.
"""

