"""Queries: the command line's term syntax, weighted text and image queries, output formats, faiss."""
import json
from pathlib import Path

import numpy as np
import pytest

import ruclip
from helpers.library import predictor_for, write_library
from ruclip.cli import main
from ruclip.search import Term, parse_terms


@pytest.fixture(scope='module')
def predictor(tiny_checkpoint):
    return predictor_for(tiny_checkpoint)


@pytest.fixture(scope='module')
def library(tmp_path_factory, predictor, tiny_checkpoint):
    folder = tmp_path_factory.mktemp('query')
    files = write_library(folder / 'lib', 30)
    index = ruclip.ImageIndex(folder / 'lib.index', predictor, model_name=str(tiny_checkpoint))
    index.update([folder / 'lib'])
    return folder, files, index


def test_term_syntax(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'диван.jpg').write_bytes(b'x')
    (tmp_path / '2:кошка').write_bytes(b'x')  # a file whose name looks like a weighted term
    assert parse_terms(['кошка', '2:собака', '-0.5:./диван.jpg', '-птица', '+.5:лес', '2:кошка', 'text:./диван.jpg',
                        '3:image:диван.jpg']) == [
        Term('кошка'), Term('собака', 2.0), Term('./диван.jpg', -0.5, True), Term('птица', -1.0),
        Term('лес', 0.5), Term('2:кошка', 1.0, True), Term('./диван.jpg'), Term('диван.jpg', 3.0, True)]
    with pytest.raises(FileNotFoundError, match="no such image file: ./стул.jpg .*text:./стул.jpg"):
        parse_terms(['./стул.jpg'])
    with pytest.raises(FileNotFoundError, match='no such image file'):
        parse_terms(['image:нет'])
    with pytest.raises(ValueError, match='query is empty'):
        parse_terms([])


def test_weighted_query_is_the_normalised_sum_of_unit_latents(library, predictor):
    folder, files, index = library
    text = predictor.get_text_latents(['кошка'])[0].numpy()
    negative = predictor.get_text_latents(['собака'])[0].numpy()
    image = predictor.get_image_latents([files[3]])[0].numpy()
    total = 2 * text + image - negative
    total /= np.linalg.norm(total)
    expected = index.search_latent(total, k=30)
    hits = index.search([('кошка', 2), Path(files[3]), ('собака', -1)], k=30)
    assert [hit.path for hit in hits] == [hit.path for hit in expected]
    np.testing.assert_allclose([hit.score for hit in hits], [hit.score for hit in expected], atol=1e-5)
    with pytest.raises(ValueError, match='cancel out'):
        index.search([('кошка', 1), ('кошка', -1)])


def test_cli_formats_prefix_and_templates(library, capsys, tiny_checkpoint):
    folder, files, index = library
    base = ['search', '--index', index.path, '-q']
    assert main(base + ['--json', '-k', '5', '2:кошка', files[0], '--', '-собака']) == 0
    results = json.loads(capsys.readouterr().out)
    expected = index.search([('кошка', 2), Path(files[0]), ('собака', -1)], k=5)
    assert [(r['rank'], r['path']) for r in results] == [(hit.rank, hit.path) for hit in expected]
    assert main(base + ['-f', '-k', '3', 'кошка']) == 0
    assert capsys.readouterr().out.splitlines() == [hit.path for hit in index.search('кошка', k=3)]
    assert main(base + ['-k', '3', '--no-templates', 'кошка']) == 0
    table = capsys.readouterr().out.splitlines()
    caption = predictor_for(tiny_checkpoint).get_caption_latents(['кошка'])[0].numpy()
    assert [line.split()[2] for line in table[1:]] == [hit.path for hit in index.search_latent(caption, k=3)]
    album = str(folder / 'lib' / 'album1')
    assert main(base + ['-f', '-k', '30', '--prefix', album, 'кошка']) == 0
    shown = capsys.readouterr().out.splitlines()
    assert len(shown) == 10 and all(path.startswith(album + '/') for path in shown)


def test_faiss_matches_exact_and_follows_updates(tmp_path, predictor):
    pytest.importorskip('faiss')
    from ruclip.search import approximate

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(100, 24)).astype(np.float32)
    latents = centres[rng.integers(0, 100, 3000)] + 0.25 * rng.normal(size=(3000, 24)).astype(np.float32)
    latents /= np.linalg.norm(latents, axis=1, keepdims=True)
    queries = latents[:50] + 0.1 * rng.normal(size=(50, 24)).astype(np.float32)
    from ruclip.search import exact
    ids = np.arange(0, 6000, 2)  # row ids, as the database's: sorted, with gaps
    for kind in approximate.KINDS:  # on clustered latents, as real ones are
        built = approximate.build(latents, ids, kind)
        report = approximate.calibrate(built, latents, ids)
        approximate.save(built, str(tmp_path / f'{kind}.faiss'), report, dict(contents='test'))
        index, saved_report, _ = approximate.load(str(tmp_path / f'{kind}.faiss'))  # with its search settings
        assert saved_report == report and report['kind'] == kind == approximate.kind_of(index)
        found = [approximate.top_k(index, q, 10, latents, ids) for q in queries]  # re-ranked, as ImageIndex does
        recall = np.mean([len(set(positions) & set(exact.top_k(latents, q, 10)[1])) / 10
                          for q, (_, positions) in zip(queries, found)])
        assert recall >= 0.9, (kind, recall)
        assert report['recall_at_10'] >= 0.9, report
        for q, (scores, positions) in zip(queries, found):  # exact scores, best first
            np.testing.assert_allclose(scores, latents[positions] @ q, rtol=1e-6)
            assert np.all(np.diff(scores) <= 0)
    files = write_library(tmp_path / 'lib', 12)
    image_index = ruclip.ImageIndex(tmp_path / 'x.index', predictor)
    image_index.update([tmp_path / 'lib'])
    assert image_index.build_approximate() == 'flat'
    assert [h.path for h in image_index.search('кошка', k=12)] == \
        [h.path for h in image_index.search('кошка', k=12, approximate_search=False)]
    (tmp_path / 'lib' / 'album0' / 'extra.png').write_bytes(open(files[0], 'rb').read())
    image_index.update([tmp_path / 'lib'])  # rebuilds the faiss index for the new contents
    assert image_index._approximate is not None
    assert len(image_index.search('кошка', k=20)) == 13
    assert any(hit.path.endswith('extra.png') for hit in image_index.search('кошка', k=20))


def test_readme_flow(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    """The README's commands, with the tiny checkpoint as the model."""
    write_library(tmp_path / 'photos', 9)
    monkeypatch.setenv('RUCLIP_INDEX', str(tmp_path / 'photos.index'))
    assert main(['index', str(tmp_path / 'photos'), '--model', str(tiny_checkpoint), '-q']) == 0
    assert '9 embedded' in capsys.readouterr().out
    assert main(['index', str(tmp_path / 'photos'), '-q']) == 0
    assert '9 unchanged' in capsys.readouterr().out
    assert main(['search', 'закат над морем', '-k', '3']) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
