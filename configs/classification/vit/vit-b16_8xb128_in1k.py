"""ViT-B/16 trained from scratch on ImageNet-1k with DeiT-B's recipe (arXiv:2012.12877): DeiT-B *is* ViT-B/16
trained with DeiT's augmentations and regularisation, so this file is ``deit/deit-b_8xb128_in1k.py`` under the ViT
name (expected top-1 81.8, DeiT paper). For the ViT paper's own ImageNet-1k recipe (Adam, batch 4096, 224 pre-training
then 384 fine-tuning) see ``vit-b16_64xb64_in1k-pretrain.py`` and ``vit-b16_8xb64_in1k-384px-finetune.py``.

    bash tools/dist_train.sh configs/classification/vit/vit-b16_8xb128_in1k.py 8
"""
_base_ = ['../deit/deit-b_8xb128_in1k.py']
