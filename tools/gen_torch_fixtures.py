#!/usr/bin/python3
"""Writes the small PyTorch checkpoint fixtures of tests/data/torch/ (read by tests/test_torch_files.c).

Not run by `make` or CI. Needs Debian's python3-torch (1.13.1; run with /usr/bin/python3):

    /usr/bin/python3 tools/gen_torch_fixtures.py tests/data/torch

Two runs give byte-identical files (PYTHONHASHSEED is forced to 0).

Files (all tiny, deterministic values; see tests/data/torch/README.md):
  state_dict.pt          torch.save of an nn.Module state_dict() (OrderedDict + _metadata BUILD) plus tensors of
                         every storage dtype and views: transposed, sliced (offset into a shared storage), expanded
                         (stride 0), strided 1-D, empty, 0-d.
  wrapped_model.pth      torch.save({'model': state_dict}) - the MS-CLAP layout.
  wrapped_state_dict.pt  torch.save({'epoch': 3, 'state_dict': {'module.' + name: ...}, ...}) to a buffer: top
                         folder 'archive/', DataParallel 'module.' prefix, BINFLOAT and str values around.
  scripted.pt            torch.jit.script of a tiny open_clip-like module (QuickGELU class, LayerNorm, Linear in a
                         Sequential, a ModuleList, Conv2d -> build_intlist, int/str/float attributes).
  traced_fp16.pt         torch.jit.trace of a module with a plain tensor attribute (baked into constants.pkl) and a
                         Linear converted to float16 after tracing (HalfStorage), as OpenAI's published archives.
  torch2x.pt             hand-written archive with the records torch 2.1 writes (data.pkl, byteorder, data/<key>,
                         version, .data/serialization_id; FB padding to 64 bytes, sizes in data descriptors), with
                         ZIP64 central-directory extra fields for every entry, a saturated classic end record
                         (so the ZIP64 end record must be used), and one deflated storage.
  expected.safetensors   every tensor of the files above, contiguous, in its own dtype, named '<file>:<name>'
                         (constants: '<file>:const:<name>').
"""
import collections
import io
import json
import os
import struct
import sys
import zipfile
import zlib

if os.environ.get('PYTHONHASHSEED') != '0':  # TorchScript writes Final constants in set order
    os.environ['PYTHONHASHSEED'] = '0'
    os.execv(sys.executable, [sys.executable] + sys.argv)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

torch.manual_seed(0)


def vals(n, scale=0.25, shift=-1.0):
    return torch.arange(n, dtype=torch.float64) * scale + shift


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.norm = nn.LayerNorm(2)
        with torch.no_grad():
            self.lin.weight.copy_(vals(6).view(2, 3))
            self.lin.bias.copy_(torch.tensor([0.5, -0.5]))
            self.norm.weight.copy_(torch.tensor([1.25, 0.75]))
            self.norm.bias.copy_(torch.tensor([0.0, 0.125]))


def state_dict_fixture():
    sd = Small().state_dict()  # OrderedDict with _metadata
    sd['dtype.f16'] = vals(5).to(torch.float16)
    sd['dtype.bf16'] = vals(4, 0.5).to(torch.bfloat16)
    sd['dtype.f64'] = vals(3, 0.1)
    sd['dtype.i64'] = torch.tensor([-3, 0, 1 << 40], dtype=torch.int64)
    sd['dtype.i32'] = torch.tensor([-7, 9], dtype=torch.int32)
    sd['dtype.i16'] = torch.tensor([-300, 300], dtype=torch.int16)
    sd['dtype.i8'] = torch.tensor([-5, 6, 7], dtype=torch.int8)
    sd['dtype.u8'] = torch.tensor([250, 1], dtype=torch.uint8)
    sd['dtype.bool'] = torch.tensor([True, False, True])
    sd['scalar'] = torch.tensor(2.5)
    base = vals(12).float().view(3, 4)
    sd['view.transposed'] = base.t()  # [4,3] stride (1,4)
    shared = vals(8, 1.0, 10.0).float().view(4, 2)
    sd['view.shared'] = shared
    sd['view.slice'] = shared[1:3]  # offset 2 into the same storage
    sd['view.expanded'] = torch.tensor([1.5, -2.0]).expand(3, 2)  # stride (0,1)
    sd['view.strided'] = vals(20).float()[2:18:3]  # offset 2, stride 3
    sd['empty'] = torch.zeros(0, 3)
    return sd


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(4)
        self.mlp = nn.Sequential(collections.OrderedDict(
            [('c_fc', nn.Linear(4, 6)), ('gelu', QuickGELU()), ('c_proj', nn.Linear(6, 4))]))

    def forward(self, x):
        return x + self.mlp(self.ln_1(x))


class Scripted(nn.Module):
    width: int
    pool_type: str
    temperature: float

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 2, bias=False)
        self.resblocks = nn.ModuleList([Block(), Block()])
        self.proj = nn.Parameter(vals(8).float().view(4, 2))
        self.register_buffer('mask', torch.triu(torch.full((3, 3), float('-inf')), 1))
        self.width = 4
        self.pool_type = 'tok'
        self.temperature = 0.07

    def forward(self, x):
        x = self.conv1(x).flatten(2).transpose(1, 2)
        for blk in self.resblocks:
            x = blk(x)
        return x @ self.proj


class Traced(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.register_buffer('count', torch.tensor(7))
        self.table = vals(6, 0.5).float().view(2, 3)  # plain attribute: traced into constants.pkl

    def forward(self, x):
        return self.fc(x) + self.table[0] * self.count


# ---- a PyTorchStreamWriter-like zip writer (for torch2x.pt) ----------------------------------------------------

def torch_like_zip(records, force_zip64=True, deflate=()):
    """records: list of (name, bytes). Layout as miniz/PyTorchStreamWriter: local header with flags 0x0808, zero
    crc/sizes, an 'FB' extra field padding the data to a multiple of 64, the data, a data descriptor; then the
    central directory, a ZIP64 end record + locator and the classic end record."""
    out = bytearray()
    central = []
    for name, data in records:
        nb = name.encode()
        method = 8 if name in deflate else 0
        if method == 8:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = c.compress(data) + c.flush()
        else:
            payload = data
        crc = zlib.crc32(data) & 0xffffffff
        offset = len(out)
        start = offset + 30 + len(nb) + 4
        pad = (-start) % 64
        extra = b'FB' + struct.pack('<H', pad) + b'Z' * pad
        out += struct.pack('<IHHHHHIIIHH', 0x04034b50, 20 if method else 0, 0x0808, method, 0, 0, 0, 0, 0,
                           len(nb), len(extra))
        out += nb + extra
        assert len(out) % 64 == 0
        out += payload
        out += struct.pack('<IIII', 0x08074b50, crc, len(payload), len(data))
        central.append((nb, method, crc, len(payload), len(data), offset))
    cd_start = len(out)
    for nb, method, crc, csize, usize, offset in central:
        if force_zip64:
            ex = struct.pack('<HHQQQ', 0x0001, 24, usize, csize, offset)
            f_csize = f_usize = f_off = 0xffffffff
        else:
            ex = b''
            f_csize, f_usize, f_off = csize, usize, offset
        out += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 45 if force_zip64 else 0, 45 if force_zip64 else 0,
                           0x0808, method, 0, 0, crc, f_csize, f_usize, len(nb), len(ex), 0, 0, 0, 0, f_off)
        out += nb + ex
    cd_size = len(out) - cd_start
    z64_eocd = len(out)
    n = len(central)
    out += struct.pack('<IQHHIIQQQQ', 0x06064b50, 44, 45, 45, 0, 0, n, n, cd_size, cd_start)
    out += struct.pack('<IIQI', 0x07064b50, 0, z64_eocd, 1)
    if force_zip64:
        out += struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 0xffff, 0xffff, 0xffffffff, 0xffffffff, 0)
    else:
        out += struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, n, n, cd_size, cd_start, 0)
    return bytes(out)


def torch2x_fixture():
    sd = collections.OrderedDict()
    sd['a'] = vals(6, 0.5).float().view(2, 3)
    sd['b'] = vals(3, 2.0).to(torch.bfloat16)
    sd['c'] = torch.tensor([4, -4], dtype=torch.int64)
    buf = io.BytesIO()
    torch.save(sd, buf)
    zf = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    prefix = zf.namelist()[0].split('/')[0] + '/'
    pkl = zf.read(prefix + 'data.pkl')
    keys = sorted(n[len(prefix) + 5:] for n in zf.namelist() if n.startswith(prefix + 'data/'))
    top = 'torch2x/'
    records = [(top + 'data.pkl', pkl), (top + 'byteorder', b'little')]
    records += [(top + 'data/' + k, zf.read(prefix + 'data/' + k)) for k in keys]
    records += [(top + 'version', b'3\n'), (top + '.data/serialization_id', b'0' * 20 + b'1234567890' * 2)]
    return torch_like_zip(records, force_zip64=True, deflate={top + 'data/1'}), sd


# ---- expected values ---------------------------------------------------------------------------------------------

ST_DTYPES = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.float64: 'F64',
             torch.int64: 'I64', torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8', torch.uint8: 'U8',
             torch.bool: 'BOOL'}


def tensor_bytes(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        b = tensor_bytes(t)
        header[name] = {'dtype': ST_DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header['__metadata__'] = {'generator': 'tools/gen_torch_fixtures.py'}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((-len(h)) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'tests/data/torch'
    os.makedirs(out, exist_ok=True)
    expected = []

    sd = state_dict_fixture()
    torch.save(sd, os.path.join(out, 'state_dict.pt'))
    expected += [('state_dict.pt:' + k, v) for k, v in sd.items()]

    small = Small().state_dict()
    torch.save({'model': small}, os.path.join(out, 'wrapped_model.pth'))
    expected += [('wrapped_model.pth:' + k, v) for k, v in small.items()]

    wrapped = collections.OrderedDict(('module.' + k, v) for k, v in small.items())
    buf = io.BytesIO()
    torch.save({'epoch': 3, 'state_dict': wrapped, 'best_acc': 0.5, 'arch': 'small'}, buf)
    with open(os.path.join(out, 'wrapped_state_dict.pt'), 'wb') as f:
        f.write(buf.getvalue())
    expected += [('wrapped_state_dict.pt:' + k, v) for k, v in small.items()]

    torch.manual_seed(1)
    scripted = torch.jit.script(Scripted().eval())
    scripted.save(os.path.join(out, 'scripted.pt'))
    expected += [('scripted.pt:' + k, v) for k, v in scripted.state_dict().items()]

    torch.manual_seed(2)
    traced = torch.jit.trace(Traced().eval(), torch.ones(2, 4))
    traced.fc.half()
    traced.save(os.path.join(out, 'traced_fp16.pt'))
    expected += [('traced_fp16.pt:' + k, v) for k, v in traced.state_dict().items()]
    consts = traced.code_with_constants[1].const_mapping
    expected += [('traced_fp16.pt:const:' + k, v) for k, v in consts.items() if isinstance(v, torch.Tensor)]

    data, sd2 = torch2x_fixture()
    with open(os.path.join(out, 'torch2x.pt'), 'wb') as f:
        f.write(data)
    expected += [('torch2x.pt:' + k, v) for k, v in sd2.items()]
    # torch itself must read the hand-written archive
    back = torch.load(os.path.join(out, 'torch2x.pt'))
    assert all(torch.equal(back[k], sd2[k]) for k in sd2)

    write_safetensors(os.path.join(out, 'expected.safetensors'), expected)
    for name in sorted(os.listdir(out)):
        print('%8d  %s' % (os.path.getsize(os.path.join(out, name)), name))


if __name__ == '__main__':
    main()
