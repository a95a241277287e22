"""Eight small pictures drawn with PIL, with Russian captions and labels: make_pics.py's inputs."""
import math

from PIL import Image, ImageDraw

SIZE = 224
# (caption, label, draw) per picture; the caption describes it, the label is its zero-shot class.
LABELS = ['круг', 'квадрат', 'треугольник', 'звезда', 'полосы', 'дом']


def _circle(draw):
    draw.rectangle((0, 0, SIZE, SIZE), fill=(235, 235, 220))
    draw.ellipse((40, 40, 184, 184), fill=(210, 30, 30))


def _square(draw):
    draw.rectangle((0, 0, SIZE, SIZE), fill=(240, 240, 240))
    draw.rectangle((52, 52, 172, 172), fill=(30, 60, 200))


def _triangle(draw):
    draw.rectangle((0, 0, SIZE, SIZE), fill=(250, 245, 230))
    draw.polygon([(112, 30), (200, 190), (24, 190)], fill=(30, 150, 60))


def _star(draw):
    draw.rectangle((0, 0, SIZE, SIZE), fill=(20, 25, 70))
    points = [(112 + (90 if i % 2 == 0 else 38) * math.sin(i * math.pi / 5),
               118 - (90 if i % 2 == 0 else 38) * math.cos(i * math.pi / 5)) for i in range(10)]
    draw.polygon(points, fill=(250, 210, 40))


def _stripes(draw):
    for i in range(8):
        draw.rectangle((0, i * 28, SIZE, i * 28 + 28), fill=(240, 240, 240) if i % 2 else (200, 30, 40))


def _house(draw):
    draw.rectangle((0, 0, SIZE, SIZE), fill=(150, 200, 250))
    draw.rectangle((0, 170, SIZE, SIZE), fill=(70, 160, 60))
    draw.rectangle((60, 100, 164, 180), fill=(180, 120, 70))
    draw.polygon([(45, 105), (112, 45), (179, 105)], fill=(140, 40, 30))
    draw.rectangle((98, 135, 126, 180), fill=(80, 50, 30))


def _sun(draw):
    draw.rectangle((0, 0, SIZE, 140), fill=(255, 180, 90))
    draw.ellipse((72, 80, 152, 160), fill=(255, 230, 60))
    draw.rectangle((0, 140, SIZE, SIZE), fill=(30, 90, 170))


def _checkers(draw):
    for row in range(8):
        for column in range(8):
            shade = 20 if (row + column) % 2 else 235
            draw.rectangle((column * 28, row * 28, column * 28 + 28, row * 28 + 28), fill=(shade,) * 3)


PICTURES = [
    ('красный круг на светлом фоне', 'круг', _circle),
    ('синий квадрат', 'квадрат', _square),
    ('зелёный треугольник', 'треугольник', _triangle),
    ('жёлтая звезда в ночном небе', 'звезда', _star),
    ('красные и белые полосы', 'полосы', _stripes),
    ('дом с красной крышей', 'дом', _house),
    ('солнце садится в море', 'круг', _sun),
    ('чёрно-белая шахматная доска', 'квадрат', _checkers),
]


def draw_pictures():
    """[(caption, label, PIL image)] for the eight pictures."""
    pictures = []
    for caption, label, draw in PICTURES:
        image = Image.new('RGB', (SIZE, SIZE))
        draw(ImageDraw.Draw(image))
        pictures.append((caption, label, image))
    return pictures
