"""CvT-13 + UperNet on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images: Swin-T's ADE20K recipe.

The CvT paper has no segmentation results, so this is the Swin-T recipe
(``swin/swin-t_upernet_8xb2-160k_ade20k-512x512.py``) with the backbone swapped: AdamW lr 6e-5, weight decay 0.01,
1500 linear warmup iterations then poly decay, 160k iterations, batch 16, 512x512 crops; drop-path 0.1 (CvT's
rule: in the last stage only, rising over its blocks). UperNet fuses CvT's three levels (strides 4, 8, 16).

Train (8 GPUs) and test:
    bash tools/dist_train.sh configs/cvt/cvt-13_upernet_8xb2-160k_ade20k-512x512.py 8
    python tools/test.py configs/cvt/cvt-13_upernet_8xb2-160k_ade20k-512x512.py work_dirs/.../iter_160000.pth

Expected: no published number (neither the CvT paper nor its repository reports ADE20K results); this recipe has
not been measured here either.

Checkpoint: the ImageNet-1k CvT-13 from the Hugging Face hub (``transformers`` layout; the backbone converts its
keys while loading). Our checkpoint I/O (switched on by our tools and by ``custom_imports``) downloads it once to
``$TORCH_HOME/checkpoints/microsoft--cvt-13--main--pytorch_model.bin``, one cache file per hub repository (mmengine
alone would cache every hub file as ``pytorch_model.bin``). Offline, download it (or the official OneDrive
``CvT-13-224x224-IN-1k.pth``, which loads as well) and point at the file:
    python tools/train.py configs/cvt/cvt-13_upernet_8xb2-160k_ade20k-512x512.py --cfg-options \
        model.backbone.init_cfg.checkpoint=checkpoints/CvT-13-224x224-IN-1k.pth

BatchNorm: CvT's q/k/v conv projections end in BatchNorm2d, which would see only the 2 images of its GPU.
``sync_bn = 'torch'`` below makes mmengine's Runner convert them (all BatchNorms of the model) to
``torch.nn.SyncBatchNorm`` when it wraps the model for distributed training; a single-process run keeps plain
BatchNorm. The BatchNorms train (``norm_eval=False``).
Data: ADEChallengeData2016 under data/ade/ (see mmseg's dataset preparation docs).
"""
_base_ = [
    '../_base_/models/upernet_cvt-13.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
pretrained = 'https://huggingface.co/microsoft/cvt-13/resolve/main/pytorch_model.bin'
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(arch='cvt-13', drop_path_rate=0.1, norm_eval=False,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 192, 384], num_classes=150),
    auxiliary_head=dict(in_channels=192, num_classes=150))
# mmengine's Runner converts every BatchNorm to torch.nn.SyncBatchNorm when training is distributed (read there as
# cfg.get('sync_bn'); ignored in a single process): the backbone's BatchNorms then see the whole batch of 16.
sync_bn = 'torch'

# AdamW; no weight decay on the cls token and norm layers: 'norm' catches the LayerNorms (patch_embed.norm,
# norm1/norm2, norms.2), the conv_proj_*.bn keys the BatchNorms of the q/k/v conv projections. They name the
# backbone's BatchNorms only: the heads' BatchNorms (``...bn``) keep their weight decay, as in the Swin recipe.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'cls_token': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
            'conv_proj_q.bn': dict(decay_mult=0.0),
            'conv_proj_k.bn': dict(decay_mult=0.0),
            'conv_proj_v.bn': dict(decay_mult=0.0),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]

# 8 GPUs x 2 images per GPU = total batch 16.
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)
