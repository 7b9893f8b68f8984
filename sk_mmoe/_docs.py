"""Docstring pieces shared by the estimators, written once.

Each estimator's docstring is its own text with these blocks filled in, so
that a parameter they share is documented the same way everywhere.
"""

ARCHITECTURE_PARAMETERS = """\
n_experts : int, default=4
    Number of shared experts :math:`M`. ``n_experts=1`` (with
    ``n_task_experts=0``) is the Shared-Bottom model.

expert_hidden_layer_sizes : sequence of int, default=(32,)
    Units of each layer of an expert (ReLU MLP); the last entry is the
    size of the representation that the gates mix.

tower_hidden_layer_sizes : sequence of int, default=(16,)
    Hidden units of each task tower, before its linear output layer (one
    unit per class, or one unit for a regression task). ``()`` gives
    linear towers.

n_task_experts : int, default=0
    Experts private to each task, beside the shared ones (Customized Gate
    Control). Task :math:`k`'s gate mixes the shared experts and its own.

n_levels : int, default=1
    Number of stacked extraction levels; ``> 1`` gives Progressive
    Layered Extraction (PLE).

shared_gate : bool, default=False
    Use one gate for all tasks: the One-gate MoE baseline. Cannot be
    combined with ``n_task_experts > 0``.

gate_dropout : float, default=@GATE_DROPOUT@
    During training, zero each expert's gate weight with this probability,
    independently per sample, task and expert, and rescale the kept
    weights to sum to 1 (a sample whose experts are all dropped keeps its
    weights): the expert dropout of Zhao et al. (2019), who use 0.1,
    against gate polarisation. Not applied at prediction time, nor with a
    single expert. 0.1 with ``gate_temperature=2`` won the gates study on
    classification and regression tables, not on the recommendation
    generator, so the mixed estimator keeps plain gates by default
    (:ref:`gates_study`).

dropout : float, default=@DROPOUT@
    Dropout probability after every hidden layer of experts and towers.
    0.1 in the classifier and the mixed estimator; 0 in the regressor,
    whose smooth targets pay for the noise: on the MMoE paper's regression
    generator (20,000 rows) dropout 0.1 gave a 1.4 times higher test MSE
    than none, and on small real tables it changed nothing beyond noise
    (:ref:`regression_defaults`).

gate : {"softmax", "dselect_k", "noisy_top_k"}, default="softmax"
    The gates. ``"softmax"``: the MMoE gate, a softmax over a linear
    function of the input. ``"dselect_k"``: DSelect-k (Hazimeh et al.,
    2021), a smooth gate whose ``gate_k`` selectors each pick one expert by
    a smooth binary code, so that a sample whose selectors have become
    binary mixes at most ``gate_k`` experts. The original's entropy penalty
    that drives every selector to binary is not included: a trained gate
    may still spread some samples over more experts. ``"noisy_top_k"``: the
    noisy top-k softmax gate (Shazeer et al., 2017): in training, Gaussian
    noise of a learned scale is added to the logits; each sample keeps its
    ``gate_k`` largest logits and mixes exactly ``gate_k`` experts.

gate_k : int, default=2
    Experts mixed per sample by a ``"dselect_k"`` or ``"noisy_top_k"``
    gate, at most ``n_experts + n_task_experts``; ignored by softmax gates.

gate_temperature : float, default=@GATE_TEMPERATURE@
    Divides the gates' logits before their softmax: above 1 the gates are
    softer (weights closer to uniform) and polarise later; 1 is the plain
    softmax of Ma et al. (2018).

gate_balance : float, default=0.0
    Weight of a load-balancing penalty added to the training loss (Shazeer
    et al., 2017, in entropy form): for every gate, ``log(M) - H(u)``,
    where ``u`` is the gate's weights averaged over the batch, which is 0
    when the batch uses all :math:`M` experts equally and ``log(M)`` when
    it uses one. Counters experts that die or a gate that collapses on one
    expert (see :ref:`inspection`); single samples may still favour one
    expert. Included in the ``train_loss`` of ``history_``.

expert_activation : {"relu", "silu"}, default="relu"
    Activation of the expert layers; ``"silu"`` is Swish (HoME, 2024).

expert_normalization : "layer" or None, default=None
    ``"layer"`` normalises each expert's output to zero mean and unit
    variance over its units (then a learned per-expert scale and shift)
    before its activation, so that no expert dominates a gate by the size
    of its output (HoME, 2024).

ensemble_size : int, default=1
    Members of an efficient ensemble (TabM-mini, Gorishniy et al., 2025):
    each member scales the (embedded) input by its own vector, initialised
    with random signs, and has its own output layer per task; experts,
    gates and towers are shared and run on all members' rows as one batch
    (training costs about ``ensemble_size`` times the rows). Each member is
    trained on every sample; predictions average the members' class
    probabilities (regression predictions). At most 1024.

task_weights : array-like of shape (n_tasks,), dict, "uncertainty", \
"gradnorm" or "pcgrad", default=None
    Weight :math:`\\lambda_k` of each task's loss, in the order of the
    columns of ``Y``, or a dict from task name to weight (tasks not named
    get 1). Non-negative, not all zero. ``None`` gives equal weights.
    ``"uncertainty"`` learns the weights with the network (Kendall, Gal and
    Cipolla, 2018; see :class:`~sk_mmoe.nn.weighting.UncertaintyWeights`): the
    fitted weights are in ``task_weights_`` and per epoch in ``history_``.
    ``"gradnorm"`` learns them so that the tasks' gradient norms on the
    shared experts stay balanced (Chen et al., 2018; see
    :class:`~sk_mmoe.nn.weighting.GradNormWeights`); ``"pcgrad"`` keeps
    equal weights and projects conflicting task gradients apart (Yu et al.,
    2020; see :class:`~sk_mmoe.nn.weighting.PCGradWeights`). Both cost one
    backward pass per task more per step, and are not supported in
    data-parallel training."""

BIAS_PARAMETERS = """\
bias_features : array-like of str or int, dict or None, default=None
    Columns of ``X`` (names or indices) that explain the training labels
    but must not drive predictions, such as the position an item was shown
    in, or the device (Zhao et al., 2019): they feed only a shallow tower
    (one hidden layer of 16 ReLU units per task) whose output is added to
    each task's logits (or value) during training, and are left out at
    prediction, which is thus the debiased one. A dict maps task names to
    their bias columns; the tower then adds to those tasks only. The
    columns must hold numbers (NaN for a missing value, which the tower
    fills with a learned value); ``X`` at prediction may hold them or not.
    The columns are not part of ``n_features_in_``, ``feature_names_in_``
    nor of the exported model.

bias_dropout : float, default=0.1
    During training, replace each bias feature value by the tower's learned
    fill with this probability, so that the model does not lean on them.
    Only with ``bias_features``."""

MISSING_LABEL_PARAMETER = """\
missing_label : int, float, str or None, default=-1
    Value of ``Y`` that marks an entry without target, in every task: the
    same in :class:`~sk_mmoe.MultiTaskMMoEClassifier` and
    :class:`~sk_mmoe.MultiTaskMMoE` (whose ``-1`` is thus never a class
    nor a regression value; pass ``missing_label=None`` to keep it). NaN,
    None and ``pd.NA`` are always missing. A missing entry is left out of
    its task's loss only. Labels that equal the marker but for their type
    (``"-1"`` with ``-1``) are refused.
    :class:`~sk_mmoe.MultiTaskMMoERegressor` has ``missing_target``
    instead, with the same meaning and no marker by default."""

CONDITIONAL_ON_PARAMETER = """\
conditional_on : dict or None, default=None
    Binary tasks that happen only after another binary task's positive
    class, ``{child: parent}`` with task names or column indices of ``Y``
    (a purchase only after a click: ``{"purchase": "click"}``). The
    child's tower learns :math:`P(\\text{child} \\mid \\text{parent}, x)`
    and is trained on every row through the joint probability
    :math:`P(\\text{parent}) \\cdot P(\\text{child} \\mid \\text{parent})`
    (ESMM, Ma et al., SIGIR 2018), free of the selection bias of training
    it on the parent's positive rows only. The child's label may be
    missing where the parent is negative (it is then negative); a child
    positive where the parent is negative is refused. Chains
    (click, add-to-cart, purchase) multiply along the chain. The positive
    class is each task's second class (``classes_[k][1]``).
    ``predict_proba`` and ``predict`` give the child's joint probability
    and label, ``predict_conditional_proba`` the conditional one. ``None``:
    no task is conditional."""

TRAINING_PARAMETERS = """\
optimizer : {"adam", "adamw", "sgd", "rmsprop", "adagrad"} or \
torch optimizer class, default="adam"
    Optimizer of the network's parameters.

lr : float or "auto", default="auto"
    Learning rate (the peak rate under ``lr_schedule``). ``"auto"``: 1e-3
    at batches of 256 rows, scaled with the square root of the batch size
    (2e-3 at 1024); 5 times that under a schedule (1e-2 at 1024).

lr_schedule : "auto", "cosine" or None, default="auto"
    How the rate moves during a ``fit`` call. None: ``lr`` throughout.
    ``"cosine"``: up from near 0 to ``lr`` over the first tenth of the
    steps of ``max_epochs`` epochs, then down to 0 along a half cosine at
    the last step; large steps first, small steps to settle, so that a few
    epochs reach about the loss of many at a constant rate. ``"auto"``:
    ``"cosine"`` when every task is a classification task and the fit holds
    out validation rows for early stopping (so the best epoch is kept
    whatever the schedule; by default above 10,000 labelled rows), None
    otherwise: smaller fits, regression tasks and ``partial_fit`` train at
    ``lr``. On the 40,000-row census sample the schedule fits in 10 epochs
    what the constant rate needs about 20 for (see the performance page);
    pass None for the constant rate of earlier versions.

weight_decay : float, default=1e-4
    L2 penalty (the optimizer's ``weight_decay``); not applied to learned
    task weights.

batch_size : int or "auto", default="auto"
    Rows per mini-batch. ``"auto"``: 256, 512 or 1024, the largest that
    still makes 32 batches of the training rows (1024 from 32,768 rows on):
    fewer, larger steps on large data, where they fit faster at the same
    quality; but 256 whenever a categorical column has fewer than 100
    training rows per value (IDs of users or items), whose vectors larger
    batches would leave with too few steps.

max_epochs : int or "auto", default="auto"
    Number of passes over the training data (the maximum, with early
    stopping); the schedule's length under ``lr_schedule``. With
    ``warm_start``, the number of further epochs per call. ``"auto"``: for
    classification tasks under the schedule, enough epochs for 300 steps,
    from 10 to 50 (10 on 32,000 rows or more in batches of 1024); otherwise
    50. Set it higher for a slower fit that may reach a lower loss, lower
    for a faster one.

early_stopping : "auto" or bool, default="auto"
    Hold out ``validation_fraction`` of the labelled rows and stop when the
    total validation loss has not improved by ``tol`` for
    ``n_iter_no_change`` epochs; the weights of the best epoch are
    restored. ``"auto"`` turns it on when ``fit`` gets more than 10,000
    rows labelled for some task (as scikit-learn's
    ``HistGradientBoostingClassifier`` does above 10,000 rows; unlabelled
    rows do not count); ``partial_fit`` never stops early.

validation_fraction : float, default=0.1
    Fraction of the rows labelled for some task held out for early
    stopping (rows without any label are never held out). Every task with
    at least two labelled rows gets at least one validation label and
    keeps at least one training label; a task with a single labelled row
    trains on it, without validation label (its validation loss is NaN,
    the other tasks' decide). Fewer than 2 labelled rows with
    ``early_stopping=True`` is an error.

n_iter_no_change : int, default=5
    Epochs without improvement before early stopping.

tol : float, default=1e-4
    Minimum decrease of the validation loss that counts as improvement.

refit : bool, default=False
    After early stopping has found the best epoch count, train a new
    network on all rows (the validation rows included) for that many
    epochs, as gradient-boosting users refit with the best number of
    trees. The fit takes about twice as long; ``n_iter_`` and
    ``history_`` are then those of the refit. Ignored without early
    stopping (and by ``partial_fit`` and warm-started fits).

warm_start : bool, default=False
    If True, ``fit`` continues training the current network instead of
    starting anew, with the current ``lr``, ``weight_decay``,
    ``batch_size`` and ``optimizer`` (a new optimizer class starts with a
    fresh state). The tasks, their types and classes and the architecture
    parameters must be unchanged.

callbacks : list of skorch callbacks, default=None
    Extra `skorch callbacks
    <https://skorch.readthedocs.io/en/stable/callbacks.html>`_ added to
    the training loop (learning-rate schedules, gradient clipping...):
    instances or classes of ``skorch.callbacks.Callback``, or
    ``(name, callback)`` pairs.

categorical_features : "from_dtype", array-like of str, int or bool, or None, \
default="from_dtype"
    Input columns that hold categories, embedded by the network as learned
    vectors rather than read as numbers (no one-hot encoding needed).
    ``"from_dtype"``: the ``category``, ``object`` and ``string`` columns of
    a DataFrame (none for an array), as in
    :class:`~sklearn.ensemble.HistGradientBoostingClassifier`; or column
    names, indices or a boolean mask; ``None`` for none. Categories are
    compared by their text. Missing values (NaN, None) get their own vector;
    values seen only once in ``fit``, beyond the ``max_categories`` most
    frequent ones, or unseen in ``fit`` share another, which rare training
    values teach.

max_categories : int, default=10_000
    At most this many vectors per categorical column (the two reserved ones
    included), for the most frequent values: bounds the memory of ID columns
    with millions of values.

sequence_features : dict or None, default=None
    The list columns of ``X`` (a user's history, a film's genres): columns
    whose values are lists, tuples or 1-D arrays of categories (a pandas
    column of such objects, a polars ``List`` column, a pyarrow list
    column) are found by their values; each is one input whose values are
    embedded and pooled into a vector that the experts and gates read (see
    :ref:`sequences`). A dict maps a list column to the categorical column
    whose vocabulary and embedding table it shares
    (``{"history": "item_id"}``: a past item and a candidate item are then
    one vector), or to None for a table of its own (the default for the
    list columns it does not name). ``None`` and empty lists hold no
    values; values unseen in ``fit`` are unseen categories.

sequence_pooling : {"auto", "mean", "sum", "attention"}, default="auto"
    How the values of a list column are pooled: their mean or sum, or
    ``"attention"``: target attention as in DIN, which weights each past
    value by a softmax of its similarity to the candidate (with a learned
    sharpness: a soft maximum), read beside the mean, for lists that share
    the table of a categorical column (the candidate); lists of their own
    table are pooled by the mean. A mean over a list with a candidate also
    gives its product with the candidate's vector. ``"auto"``: attention
    for a list that shares a table, the mean for the others (attention
    beats the mean on users unseen in training in the benchmark of the user
    guide's list-column page); ``attention_weights(X)`` reads what the
    attention learned.

max_sequence_length : int, default=50
    Values kept per row of a list column: the last ones (the most recent),
    and no more than the longest list of ``fit`` (which sets the padded
    width the network reads).

numeric_scaling : "robust", "robust_unclipped" or None, default=@SCALING@
    ``"robust"`` centres every numeric input column on its median, divides
    it by its interquartile range (over 1.349) and clips it smoothly,
    ``z / sqrt(1 + (z / 3)^2)``, inside the network: heavy-tailed columns
    (money amounts, counts) need no preprocessing, and exported models
    include the scaling. Statistics come from ``fit`` (a sample of 100,000
    rows at most). The clipping bends every value a little (a column one
    scale from its median is read as 0.95), which costs accuracy where
    targets follow the inputs linearly: ``"robust_unclipped"`` centres and
    divides only (the regressor's default; see :ref:`quality`). Sparse
    inputs are not scaled. ``None`` passes the numbers as they are.

numeric_missing : "learn" or "error", default="learn"
    What a missing numeric value (NaN, None, ``pd.NA``, a polars null) of
    ``X`` does. ``"learn"``: the network replaces it by a value learned per
    column during ``fit`` (starting at the column's median, after the
    scaling; with ``numeric_embedding`` it gets a vector of its own, which
    plays the part of a missing-value indicator), in ``fit``, ``predict``
    and exported models alike, as
    :class:`~sklearn.ensemble.HistGradientBoostingClassifier` accepts
    missing values. The robust statistics of the scaling leave them out.
    ``"error"``: a missing value is a ValueError that names its column.
    Infinite values are refused either way, and so are missing values of a
    sparse ``X``. Models saved before this option refuse missing values.

numeric_embedding : "auto", "periodic" or None, default="auto"
    ``"periodic"`` turns each numeric input column (after the scaling) into a
    vector of 8 learned features: ``cos`` and ``sin`` of 16 learned
    frequencies, then a linear layer and a ReLU of the column's own (the PLR
    embeddings of Gorishniy et al., 2022, from ``rtdl-num-embeddings``).
    The experts can then draw sharp and non-monotone functions of single
    columns (thresholds on money amounts, ages), which a plain MLP learns
    slowly. Each numeric column costs 8 inputs of the first layer instead
    of 1 and a few operations per batch, which dominate the time of a small
    network when there are many columns: ``"auto"`` embeds them when the
    input has at most 16 numeric columns. Sparse inputs are not embedded.
    ``None`` passes the (scaled) numbers to the experts as they are. Models
    saved by versions that embedded with 48 frequencies keep them.

device : str or torch.device, default="cpu"
    Device that trains and runs the network, e.g. ``"cuda"``. A device that
    is not available on the machine is refused with a ValueError.

n_threads : int or None, default=None
    PyTorch CPU threads used while training and predicting (restored
    afterwards). ``None`` starts from PyTorch's own count (which follows
    ``OMP_NUM_THREADS`` and the limits joblib sets in the workers of
    ``GridSearchCV(n_jobs=...)``) and lowers it to the number of cores that
    other processes leave idle when ``fit`` starts (Linux; see the
    :ref:`scaling` guide), since PyTorch's threads wait for each other
    and a core busy with another process slows every operation down. Set it
    for reproducible timings; the count is process-wide while a call runs.

random_state : int, RandomState instance or None, default=None
    Seeds the initialisation, the batch order, dropout and the
    validation split. With an int, two fits on the same data give
    identical models on CPU.

verbose : int, default=0
    ``0`` is silent; ``> 0`` prints, after every epoch, the total and
    per-task losses and the epoch's duration, with a progress bar over
    the batches of long epochs on a terminal (plain lines in a log file)."""

COMMON_ATTRIBUTES = """\
n_outputs_ : int
    Number of tasks.

task_names_ : list of str
    Names of the tasks: the columns of a DataFrame ``Y``, else
    ``"task0"``, ``"task1"``...

task_types_ : list of str
    Type of each task: ``"binary"``, ``"multiclass"``, ``"regression"`` or
    ``"poisson"`` (a count task, ``loss="poisson"``).

task_weights_ : ndarray of shape (n_tasks,)
    The weight each task's loss has at the end of training: the fixed
    ``task_weights``, or the learned ones with ``"uncertainty"`` or
    ``"gradnorm"``.

n_features_in_ : int
    Number of features seen during :term:`fit`, the ``bias_features`` left
    out.

feature_names_in_ : ndarray of shape (`n_features_in_`,)
    Names of features seen during :term:`fit`, the ``bias_features`` left
    out. Defined only when `X` has feature names that are all strings.

bias_features_in_ : ndarray
    The ``bias_features`` columns: their names when `X` had names, else
    their indices in the `X` of fit. Defined only with ``bias_features``.

module_ : MMoENetwork
    The trained :class:`torch.nn.Module`.

net_ : skorch.NeuralNet
    The skorch wrapper that trained ``module_``. With ``bias_features``, it
    trained ``module_`` with the bias tower beside it
    (``net_.module_.bias_tower``), which prediction leaves out.

history_ : list of dict
    One dict per epoch: ``epoch``, ``train_loss`` (the weighted total),
    ``train_loss_<task>`` for every task, ``dur`` (seconds),
    ``train_batch_count`` and ``train_loss_best`` (whether the epoch
    improved on the best loss so far), with ``"uncertainty"`` weights
    ``task_weight_<task>``, and, with early stopping, the same ``valid_``
    entries. Callbacks may add more.

n_iter_ : int
    Number of epochs run."""


def indent(text: str, spaces: int = 4) -> str:
    """``text`` with every non-empty line indented by ``spaces``."""
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in text.splitlines())


def fill(
    template: str,
    numeric_scaling: str = '"robust"',
    gates: tuple[str, str] = ("0.1", "2.0"),
    dropout: str = "0.1",
    **blocks: str,
) -> str:
    """``template`` with ``{name}`` replaced by the indented ``blocks``,
    and the estimator's defaults of ``numeric_scaling``, of the gates'
    dropout and temperature and of ``dropout`` in their entries.

    The template's other braces must be doubled, as in :meth:`str.format`.
    """
    training = TRAINING_PARAMETERS.replace("@SCALING@", numeric_scaling)
    architecture = ARCHITECTURE_PARAMETERS.replace("@GATE_DROPOUT@", gates[0])
    architecture = architecture.replace("@GATE_TEMPERATURE@", gates[1])
    architecture = architecture.replace("@DROPOUT@", dropout)
    return template.format(
        architecture=indent(architecture),
        bias=indent(BIAS_PARAMETERS),
        training=indent(training),
        attributes=indent(COMMON_ATTRIBUTES),
        **{name: indent(text) for name, text in blocks.items()},
    )
