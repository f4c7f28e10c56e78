"""The model: the Haar wavelets, the WG blocks, the WG-UNet, what its outputs mean, its cost, portable code, a latent
model's autoencoder."""

from diffusers import ModelMixin, UNet2DModel

from wgunet.model.unet import WGUNet

# what a distillation run may train (config student_class); a UNet2DModel student loads without this package
STUDENT_CLASSES: dict[str, type[ModelMixin]] = {"WGUNet": WGUNet, "UNet2DModel": UNet2DModel}
