"""Tests for weights-only checkpoint loading and atomic checkpoint saving."""
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import get_file_backend
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import CheckpointLoader, Runner
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

from vit_backbones.engine import checkpoint_io
from vit_backbones.engine.checkpoint_io import (
    AtomicLocalBackend,
    CheckpointError,
    load_checkpoint_file,
    register_checkpoint_io,
)

HELPERS = Path(__file__).resolve().parents[1] / 'helpers'
REPO = Path(__file__).resolve().parents[2]


def _mmengine_style_checkpoint() -> dict:
    """What ``Runner.save_checkpoint`` writes, built without a runner."""
    hub = MessageHub(f'ckpt-io-{os.getpid()}')
    for loss in (1.0, 0.5, 0.25):
        hub.update_scalar('train/loss', loss)
    hub.update_info('iter', 3)
    hub.update_info('best_score', np.float64(0.75))
    cfg = Config(dict(metainfo=dict(classes=('a', 'b'), palette=[[0, 0, 0]])))
    meta = dict(
        iter=3,
        cfg=cfg.pretty_text,
        dataset_meta=cfg.metainfo,  # a ConfigDict
        seed=np.int64(7),
        hist=np.arange(4, dtype=np.float32))
    return dict(
        meta=meta,
        state_dict={'fc.weight': torch.ones(2, 2)},
        message_hub=hub.state_dict())


def _save(obj, path: Path, **kwargs) -> Path:
    torch.save(obj, path, **kwargs)
    return path


class _Reduce:
    """Pickles as ``func(*args)``, like a hostile checkpoint would."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_mmengine_checkpoint_loads_weights_only(tmp_path):
    path = _save(_mmengine_style_checkpoint(), tmp_path / 'iter_3.pth')
    with pytest.raises(pickle.UnpicklingError):  # why the allowlist exists
        torch.load(path, weights_only=True)
    before = set(torch.serialization.get_safe_globals())

    ckpt = load_checkpoint_file(path, map_location='cpu')

    assert set(torch.serialization.get_safe_globals()) == before
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(1.75 / 3)
    assert buffer.statistics('current') == 0.25
    assert ckpt['message_hub']['runtime_info']['best_score'] == 0.75
    assert ckpt['meta']['dataset_meta']['classes'] == ('a', 'b')
    assert ckpt['meta']['seed'] == 7
    np.testing.assert_array_equal(ckpt['meta']['hist'], np.arange(4))
    assert torch.equal(ckpt['state_dict']['fc.weight'], torch.ones(2, 2))


def test_numpy1_pickle_names_load(tmp_path):
    path = tmp_path / 'old.pth'
    _save({'x': np.arange(3), 'y': np.float64(2.5)}, path,
          _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    assert b'numpy._core.multiarray' in data
    path.write_bytes(
        data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray'))

    ckpt = load_checkpoint_file(path)

    np.testing.assert_array_equal(ckpt['x'], [0, 1, 2])
    assert ckpt['y'] == 2.5


def test_missing_file_names_path(tmp_path):
    path = tmp_path / 'nope.pth'
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_file(path)


@pytest.mark.parametrize('kind', ['truncated', 'random', 'text', 'empty'])
def test_corrupt_file_raises_checkpoint_error(tmp_path, kind):
    path = tmp_path / f'{kind}.pth'
    if kind == 'truncated':
        full = _save(_mmengine_style_checkpoint(), tmp_path / 'full.pth')
        data = full.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif kind == 'random':
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == 'text':
        path.write_text('model = dict(type="Swin")\n')
    else:
        path.write_bytes(b'')

    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(path)

    message = str(info.value)
    assert str(path) in message
    assert 'PyTorch checkpoint (.pth)' in message
    assert 'Original error' in message
    assert isinstance(info.value, RuntimeError)


def test_non_dict_checkpoint_raises(tmp_path):
    path = _save([torch.zeros(1)], tmp_path / 'list.pth')
    with pytest.raises(CheckpointError, match=r'list\.pth.*holds a list'):
        load_checkpoint_file(path)


@pytest.mark.parametrize('payload', [
    _Reduce(getattr, HistoryBuffer, '__init__'),
    _Reduce(getattr, HistoryBuffer, 'data'),
    _Reduce(getattr, HistoryBuffer, 'register_statistics'),
    _Reduce(open, 'MARKER', 'w'),
    _Reduce(os.system, 'touch MARKER'),
])
def test_disallowed_globals_raise(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    path = _save({'meta': payload}, tmp_path / 'evil.pth')
    with pytest.raises(CheckpointError, match='evil.pth'):
        load_checkpoint_file(path)
    assert not (tmp_path / 'MARKER').exists()


def test_register_is_idempotent_and_routes_mmengine(tmp_path):
    register_checkpoint_io()
    register_checkpoint_io()

    loader = CheckpointLoader._get_checkpoint_loader(str(tmp_path / 'a.pth'))
    assert loader is checkpoint_io.load_from_safe_local
    assert isinstance(get_file_backend(str(tmp_path)), AtomicLocalBackend)
    path = _save(_mmengine_style_checkpoint(), tmp_path / 'a.pth')
    assert _load_checkpoint(str(path))['meta']['iter'] == 3
    with pytest.raises(CheckpointError):
        _load_checkpoint(str(_save(7, tmp_path / 'int.pth')))


def test_atomic_save_keeps_old_file_on_failure(tmp_path, monkeypatch):
    register_checkpoint_io()
    path = tmp_path / 'ckpt' / 'latest.pth'
    save_checkpoint({'state_dict': {'w': torch.zeros(3)}}, str(path))
    old_bytes = path.read_bytes()
    real_fdopen = os.fdopen

    class HalfWriter:
        """Writes half of the data, then fails like a full disk."""

        def __init__(self, fd, mode):
            self.file = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(data[:len(data) // 2])
            self.file.flush()
            raise OSError(28, 'No space left on device')

    monkeypatch.setattr(checkpoint_io.os, 'fdopen', HalfWriter)
    with pytest.raises(OSError, match='No space'):
        save_checkpoint({'state_dict': {'w': torch.ones(1000)}}, str(path))

    assert path.read_bytes() == old_bytes
    assert os.listdir(path.parent) == ['latest.pth']
    monkeypatch.undo()
    assert torch.equal(
        load_checkpoint_file(path)['state_dict']['w'], torch.zeros(3))


def test_atomic_put_text_and_overwrite(tmp_path):
    backend = AtomicLocalBackend()
    target = tmp_path / 'new' / 'dir' / 'notes.txt'
    backend.put_text('first', target)
    backend.put_text('second ✓', target)
    backend.put(b'\x00\x01', tmp_path / 'blob.bin')
    assert target.read_text(encoding='utf-8') == 'second ✓'
    assert (tmp_path / 'blob.bin').read_bytes() == b'\x00\x01'
    assert sorted(os.listdir(target.parent)) == ['notes.txt']


def test_runner_checkpoints_go_through_atomic_backend(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HELPERS))
    from tiny_mmengine_modules import tiny_config

    register_checkpoint_io()
    written = []
    real_write = AtomicLocalBackend._write_atomic

    def spy(data, filepath):
        written.append(os.path.basename(filepath))
        real_write(data, filepath)

    monkeypatch.setattr(AtomicLocalBackend, '_write_atomic', staticmethod(spy))
    cfg = tiny_config(str(tmp_path / 'work'), max_iters=3, interval=2)
    cfg.pop('custom_imports')  # imported above, in this process
    runner = Runner.from_cfg(Config(cfg))
    runner.train()

    assert {'iter_2.pth', 'iter_3.pth'} <= set(written)
    resumed = _load_checkpoint(str(tmp_path / 'work' / 'iter_3.pth'))
    assert resumed['meta']['iter'] == 3
    assert isinstance(resumed['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)


def test_import_changes_nothing_until_switched_on():
    """``import vit_backbones`` only registers modules; the switch is explicit."""
    script = textwrap.dedent("""
        from mmengine.fileio import exists
        from mmengine.fileio.backends import registry_utils
        from mmengine.fileio.io import backend_instances
        from mmengine.runner import CheckpointLoader

        def state():
            return (CheckpointLoader._schemes[''], registry_utils.backends['local'],
                    registry_utils.prefix_to_backends[''])

        exists('.')  # mmengine caches a plain LocalBackend instance
        cached = dict(backend_instances)
        before = state()
        import vit_backbones, vit_backbones.engine, vit_backbones.engine.runner_utils
        assert state() == before, state()
        assert before[0].__name__ == 'load_from_local', before

        import vit_backbones.engine.safe_checkpoint_io
        from vit_backbones.engine import checkpoint_io
        assert state() == (checkpoint_io.load_from_safe_local, checkpoint_io.AtomicLocalBackend,
                           checkpoint_io.AtomicLocalBackend), state()
        assert backend_instances == cached  # mmengine's private cache is not edited
        print('ok')
    """)
    proc = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == 'ok', proc.stderr[-3000:]


@pytest.mark.parametrize('config', ['swin_t_upernet.py', 'pvtv2_b2_mask_rcnn.py'])
def test_our_configs_switch_it_on_for_other_tools(config):
    """mmseg's/mmdet's own tools/train.py read the config (and its custom_imports) before building the Runner."""
    script = textwrap.dedent(f"""
        from mmengine.config import Config
        from mmengine.fileio.backends import registry_utils
        from mmengine.runner import CheckpointLoader

        assert CheckpointLoader._schemes[''].__name__ == 'load_from_local'
        Config.fromfile({str(REPO / 'configs' / config)!r})
        assert CheckpointLoader._schemes[''].__name__ == 'load_from_safe_local'
        assert registry_utils.backends['local'].__name__ == 'AtomicLocalBackend'
        print('ok')
    """)
    proc = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == 'ok', proc.stderr[-3000:]


def test_enable_alias():
    assert checkpoint_io.enable_safe_checkpoint_io is register_checkpoint_io


def _temp(target: Path, pid: int, host: str = None) -> Path:
    """A temporary of ``target`` named as if process ``pid`` on ``host`` wrote it."""
    host = checkpoint_io._host_tag() if host is None else host
    path = target.parent / f'.{target.name}.{host}.{pid}-0123abcd.tmp'
    path.write_bytes(b'partial')
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_temporary_names_its_owner(tmp_path):
    name = AtomicLocalBackend.temporary_name('latest.pth')
    assert name.startswith(f'.latest.pth.{checkpoint_io._host_tag()}.{os.getpid()}-')
    assert name.endswith('.tmp') and name != AtomicLocalBackend.temporary_name('latest.pth')


def test_killed_save_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    target = tmp_path / 'latest.pth'
    script = textwrap.dedent(f"""
        import os, signal
        from vit_backbones.engine.checkpoint_io import AtomicLocalBackend
        os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # killed between write and rename
        AtomicLocalBackend().put(b'new' * 1000, {str(target)!r})
    """)
    proc = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert proc.returncode == -9, proc.stderr[-3000:]
    leftover = [p.name for p in tmp_path.iterdir()]
    assert len(leftover) == 1 and leftover[0].startswith('.latest.pth.'), leftover

    AtomicLocalBackend().put(b'saved', target)

    assert sorted(p.name for p in tmp_path.iterdir()) == ['latest.pth']
    assert target.read_bytes() == b'saved'


def test_next_save_removes_only_stale_temporaries_of_its_target(tmp_path):
    target = tmp_path / 'latest.pth'
    dead = _dead_pid()
    sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])
    try:
        stale = [
            _temp(target, dead),
            _temp(target, os.getpid()),  # our pid, but not being written: an earlier process's
        ]
        old_style = tmp_path / '.latest.pth.89abcdef.tmp'  # naming without an owner
        old_style.write_bytes(b'partial')
        kept = [
            _temp(target, os.getppid()),
            _temp(target, sleeper.pid),
            _temp(target, dead, host='other-host'),  # cannot tell on a shared file system
            _temp(tmp_path / 'other.pth', dead),  # another target's
            _temp(tmp_path / 'latest.pth.1', dead),
        ]
        for name in ('.latest.pth.swp', '.latest.pth.tmp', f'.latest.pth.{dead}.0123abcd.tmp',
                     '.latest.pth.89abcdef.tmp.bak', '.other.pth.89abcdef.tmp', 'notes.txt'):
            (tmp_path / name).write_text('user file')
            kept.append(tmp_path / name)
        (tmp_path / 'sub').mkdir()

        backend = AtomicLocalBackend()
        backend.put(b'saved', target)

        assert target.read_bytes() == b'saved'
        assert not any(p.exists() for p in stale + [old_style])
        assert all(p.exists() for p in kept)
        assert (tmp_path / 'sub').is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(['latest.pth', 'sub'] + [p.name for p in kept])


def test_huggingface_urls_get_one_cache_file_per_repository(tmp_path, monkeypatch):
    """Two hub files both named pytorch_model.bin never share a cache entry; a cached file loads offline."""
    name = checkpoint_io.huggingface_cache_name
    assert name('https://huggingface.co/microsoft/cvt-13/resolve/main/pytorch_model.bin') \
        == 'microsoft--cvt-13--main--pytorch_model.bin'
    assert name('https://huggingface.co/microsoft/cvt-21/resolve/main/pytorch_model.bin') \
        == 'microsoft--cvt-21--main--pytorch_model.bin'
    for bad in ['https://huggingface.co/microsoft/cvt-13', 'https://huggingface.co/microsoft/cvt-13/blob/main/x.bin']:
        with pytest.raises(ValueError, match='OWNER/REPO/resolve/REVISION/FILE'):
            name(bad)
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', lambda *a, **k: pytest.fail('must not download'))
    (tmp_path / 'checkpoints').mkdir()
    torch.save({'w': torch.ones(2)}, tmp_path / 'checkpoints' / 'microsoft--cvt-13--main--pytorch_model.bin')
    from safetensors.torch import save_file
    save_file({'w': torch.zeros(3)}, str(tmp_path / 'checkpoints' / 'microsoft--cvt-21--main--model.safetensors'))
    checkpoint_io.register_checkpoint_io()
    loaded = CheckpointLoader.load_checkpoint('https://huggingface.co/microsoft/cvt-13/resolve/main/pytorch_model.bin')
    assert torch.equal(loaded['w'], torch.ones(2))
    loaded = CheckpointLoader.load_checkpoint('https://huggingface.co/microsoft/cvt-21/resolve/main/model.safetensors')
    assert torch.equal(loaded['w'], torch.zeros(3))


def test_huggingface_download_goes_to_the_repository_cache_name(tmp_path, monkeypatch):
    fetched = []

    def fake_download(url, dst, progress=True):
        fetched.append((url, Path(dst).name))
        torch.save({'w': torch.full((2,), 7.0)}, dst)

    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', fake_download)
    url = 'https://huggingface.co/microsoft/cvt-13/resolve/main/pytorch_model.bin'
    for _ in range(2):  # the second load is served from the cache
        assert torch.equal(checkpoint_io.load_from_huggingface(url, 'cpu')['w'], torch.full((2,), 7.0))
    assert fetched == [(url, 'microsoft--cvt-13--main--pytorch_model.bin')]
