"""The pictures, rendered headless: their cells, labels and values, and Cyrillic that renders."""
import io
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import ruclip

matplotlib = pytest.importorskip('matplotlib')
matplotlib.use('Agg')

CAPTIONS = ['жёлтая звезда', 'синий квадрат', 'щука и ёж']
LABELS = ['кошка', 'собака', 'лошадь', 'птица']


def solid_images(n):
    return [Image.new('RGB', (60 + 10 * i, 50), (40 * i, 255 - 40 * i, 128)) for i in range(n)]


def render(figure) -> Image.Image:
    """Draw to PNG; fail on any warning, such as a glyph missing from the font."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        figure.savefig(buffer, format='png')
    return Image.open(buffer)


def assert_cyrillic_renders(text_artist):
    from matplotlib.font_manager import findfont
    from matplotlib.ft2font import FT2Font

    font = FT2Font(findfont(text_artist.get_fontproperties()))
    missing = [char for char in text_artist.get_text() if char.strip() and font.get_char_index(ord(char)) == 0]
    assert not missing, f'{font.fname} has no glyph for {missing}'


def test_similarity_heatmap_shows_every_cell_caption_and_thumbnail():
    similarity = torch.tensor([[0.31, -0.02, 0.10], [0.05, 0.44, 0.12]])  # [2 images, 3 captions]
    figure = ruclip.similarity_heatmap(similarity, solid_images(2), CAPTIONS)
    assert isinstance(figure, matplotlib.figure.Figure)
    ax, = figure.axes
    cells, *thumbnails = ax.get_images()
    assert cells.get_label() == 'similarity'
    np.testing.assert_allclose(cells.get_array(), similarity.t().numpy())  # captions on rows
    assert [thumbnail.get_label() for thumbnail in thumbnails] == ['thumbnail 0', 'thumbnail 1']
    assert all(thumbnail.get_array().shape[:2] == (50, 50) for thumbnail in thumbnails)  # centred squares
    written = {(text.get_position(), text.get_text()) for text in ax.texts}
    assert written == {((column, row), f'{similarity[column, row]:.2f}') for column in range(2) for row in range(3)}
    assert [label.get_text() for label in ax.get_yticklabels()] == CAPTIONS
    assert ax.get_title() == 'Cosine similarity between text and image features'
    image = render(figure)
    assert image.width > 200 and image.height > 200
    for label in ax.get_yticklabels():
        assert_cyrillic_renders(label)


def test_probability_bars_show_each_images_top_k():
    scores = torch.tensor([[0.7, 0.2, 0.06, 0.04], [0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]])
    top = ruclip.top_k(scores, 3, labels=LABELS)
    figure = ruclip.probability_bars(solid_images(3), top, columns=2, title='случайный чекпойнт')
    assert len(figure.axes) == 6  # image, bars per image
    for i, (picture, bars) in enumerate(zip(figure.axes[0::2], figure.axes[1::2])):
        assert len(picture.get_images()) == 1
        widths = [patch.get_width() for patch in bars.patches]
        np.testing.assert_allclose(widths, top.scores[i].numpy())
        assert [label.get_text() for label in bars.get_yticklabels()] == top.labels[i]
        assert bars.get_xlabel() == f'probability "{top.labels[i][0]}"'
        assert [text.get_text() for text in bars.texts] == [f'{score:.2f}' for score in top.scores[i].tolist()]
    assert figure.get_suptitle() == 'случайный чекпойнт'
    render(figure)
    assert_cyrillic_renders(figure.axes[1].xaxis.label)


def test_label_grid_titles_each_image_with_its_label():
    labels = ['кошка', 'собака', 'ёжик', 'кошка', 'птица']
    figure = ruclip.label_grid(solid_images(5), labels, columns=2)
    assert [ax.get_title() for ax in figure.axes] == labels
    assert [ax.get_subplotspec().get_geometry()[:2] for ax in figure.axes] == [(3, 2)] * 5
    render(figure)
    assert_cyrillic_renders(figure.axes[2].title)


def test_the_default_heatmap_title_fits_a_figure_of_two_images():
    figure = ruclip.similarity_heatmap(torch.tensor([[0.1, 0.2], [0.3, 0.4]]), solid_images(2), ['a', 'b'])
    render(figure)
    title = figure.axes[0].title.get_window_extent()
    assert 0 <= title.x0 and title.x1 <= figure.bbox.x1 and title.y1 <= figure.bbox.y1


def test_probability_bars_of_a_ranking_show_negative_cosines():
    scores = torch.tensor([[0.3, -0.1, -0.4], [0.05, -0.2, -0.25]])
    top = ruclip.top_k(scores, 3, labels=['a', 'b', 'c'])
    figure = ruclip.probability_bars(solid_images(2), top, score_name='cosine')
    for bars in figure.axes[1::2]:
        low, high = bars.get_xlim()
        assert low < -0.4 and high > 0.3
        assert bars.get_xlabel().startswith('cosine "')
    render(figure)


def test_plots_take_a_generator_of_images():
    figure = ruclip.label_grid((image for image in solid_images(3)), ['a', 'b', 'c'])
    assert len(figure.axes) == 3


def test_plots_read_paths_and_bytes(tmp_path):
    path = tmp_path / 'a.png'
    solid_images(1)[0].save(path)
    figure = ruclip.label_grid([path, path.read_bytes()], ['путь', 'байты'])
    assert [ax.get_images()[0].get_array().shape for ax in figure.axes] == [(50, 60, 3)] * 2


@pytest.mark.parametrize('call, match', [
    (lambda: ruclip.similarity_heatmap(torch.zeros(2, 2), solid_images(2), CAPTIONS), r'\[2, 3\]'),
    (lambda: ruclip.label_grid(solid_images(2), ['a']), '1 rows for 2 images'),
    (lambda: ruclip.label_grid([], []), 'empty'),
    (lambda: ruclip.similarity_heatmap(torch.zeros(2, 0), solid_images(2), []), 'texts is empty'),
    (lambda: ruclip.similarity_heatmap(torch.zeros(0, 2), [], ['a', 'b']), 'images is empty'),
    (lambda: ruclip.label_grid(solid_images(2), ['a', 'b'], columns=0), 'columns must be a positive integer'),
    (lambda: ruclip.probability_bars(solid_images(1), ruclip.top_k(torch.ones(1, 2), 1), columns=0), 'columns'),
    (lambda: ruclip.probability_bars(solid_images(1), ruclip.top_k(torch.ones(2, 2), 1)), '2 rows for 1'),
])
def test_mismatched_inputs_raise_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_a_lone_path_is_not_taken_for_a_list_of_images():
    with pytest.raises(TypeError, match='images must be a list'):
        ruclip.label_grid('photo.jpg', ['a'])


def test_without_matplotlib_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, 'matplotlib.figure', None)
    with pytest.raises(ImportError, match=r"ruclip\[plot\]"):
        ruclip.label_grid(solid_images(1), ['a'])
