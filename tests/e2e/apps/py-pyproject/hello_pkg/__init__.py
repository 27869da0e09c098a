import flask

app = flask.Flask(__name__)


@app.route("/")
def index():
    return "installed by pip: flask\n"
