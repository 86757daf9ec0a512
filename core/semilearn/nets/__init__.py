"""Networks, and the one interface every network follows.

A network is a ``torch.nn.Module`` built by ``builder(num_classes, spec)`` (see the
``register_nets`` hook point), where ``spec`` is the data set's
:class:`~semilearn.data.modality.InputSpec`: what one sample is. A network of images reads
``channels, height, width = spec.image_shape`` (ResNet-18's stem depends on the height, a
ViT checks it), which raises a DataError for samples that are not images. Its ``forward(x)``
takes a float batch ``[B, C, H, W]`` (or the named views of another modality) and returns
a dict:

* ``logits``: ``[B, num_classes]`` class scores;
* ``feat``: ``[B, num_features]`` the features before the classifier.

It exposes ``num_features`` (the width of ``feat``) and ``classifier``: the module that
maps ``feat`` to ``logits`` (``logits == classifier(feat)``), which algorithms that mix
features rather than inputs call on their own (USB's ``only_fc=True``; MixMatch's and
ReMixMatch's ``mixup_manifold``): every built-in network has one, and an algorithm that
needs it refuses a network without it in one line (:func:`semilearn.nets.heads.feature_classifier`).
A network of text may also take word embeddings: ``forward`` accepting ``inputs_embeds``
``[B, L, H]`` in place of ``input_ids`` and, with ``return_embed=True``, returning ``embed``
(its embedding layer's output), which VAT's ``vat_embed`` perturbs. Optionally, as USB's networks,
``no_weight_decay()`` names parameters of more than one dimension that get no weight
decay, and ``layer_key(name)`` places a parameter for layer-wise learning-rate decay
(see :mod:`semilearn.optim`). Algorithms that need more heads
(projection, rotation) add them around the network, reading ``feat``
(:mod:`semilearn.nets.heads`: ``NetWithHeads``, ``ProjectionHead``, ``RotationHead``).

This module imports nothing heavy: it only lists the built-in networks, which the
``catalog`` plugin registers.
"""

from __future__ import annotations

__all__ = ["BUILTIN_NETS"]

# name -> ("module:builder", description); imported when the registry is first needed
BUILTIN_NETS: dict[str, tuple[str, str]] = {
    "small_cnn": ("semilearn.nets.cnn:small_cnn", "4-layer CNN for tiny images (8x8 digits)"),
    "wrn_28_2": ("semilearn.nets.wrn:wrn_28_2", "Wide ResNet 28-2 (USB's classic-CV network, 32x32)"),
    "wrn_28_8": ("semilearn.nets.wrn:wrn_28_8", "Wide ResNet 28-8 (USB's CIFAR-100 network, 32x32)"),
    "wrn_var_37_2": ("semilearn.nets.wrn:wrn_var_37_2", "Wide ResNet variant, 4 groups (USB's STL-10 network, 96x96)"),
    "resnet18": ("semilearn.nets.resnet:resnet18", "ResNet-18 (ImageNet stem from 64 pixels, CIFAR stem below)"),
    "resnet50": ("semilearn.nets.resnet:resnet50",
                 "ResNet-50 of bottleneck blocks (USB's ImageNet network; ImageNet stem from 64 pixels)"),
    "vit_tiny_patch2_32": ("semilearn.nets.vit:vit_tiny_patch2_32", "ViT-Ti/2 (USB's usb_cv network, 32x32)"),
    "vit_small_patch2_32": ("semilearn.nets.vit:vit_small_patch2_32", "ViT-S/2 (USB's usb_cv network, 32x32)"),
    "vit_small_patch16_224": ("semilearn.nets.vit:vit_small_patch16_224", "ViT-S/16 (USB's usb_cv network, 224x224)"),
    "vit_base_patch16_224": ("semilearn.nets.vit:vit_base_patch16_224", "ViT-B/16 (224x224)"),
    "vit_base_patch16_96": ("semilearn.nets.vit:vit_base_patch16_96", "ViT-B/16 (USB's usb_cv STL-10 network, 96x96)"),
}
